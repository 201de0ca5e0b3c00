/* The replay loop on a worker lcore: the capture comes in through a
 * net_pcap port, the venue simulator's answers through a ring port, and
 * the core is called in the order the pcap backend's scheduler uses
 * (dataplane/replay.py), so the output is the same byte for byte whatever
 * sizes the ports' bursts have:
 *
 *   now = the earliest of: the next capture frame, the next answer, the
 *         core's next timer deadline (up to the capture's last time);
 *   one call = the capture frames at `now`, then the answers at `now`, at
 *         most OMS_BURST in all; none when only a timer is due.
 *
 * Each frame keeps its time in the mbuf timestamp field: net_pcap writes
 * the capture's record time there, the main lcore writes an answer's, and
 * this loop writes now_ns on every frame it sends, from which the main
 * lcore writes the output pcap (net_pcap's own TX stamps would come from
 * its clock).  After a call that sent frames to a venue, the loop waits
 * until the main lcore has taken them and queued their answers (a step):
 * the venue simulator is Python, and an answer may be due before the next
 * capture frame. */
#include <string.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "replay_loop.h"

extern int oms_ts_offset;

/* spins while waiting for the main lcore before sleeping between looks */
#define WAIT_SPINS 1024
#define NO_TIME UINT64_MAX

static inline uint64_t *mbuf_ts(struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, oms_ts_offset, uint64_t *);
}

/* Until the main lcore has acknowledged every step, or is stopping us. */
static void wait_acked(struct oms_replay *r)
{
	uint32_t spins = 0;

	while (__atomic_load_n(&r->acked, __ATOMIC_ACQUIRE) < r->steps && !r->stop) {
		if (++spins < WAIT_SPINS || r->idle_sleep_us == 0)
			rte_pause();
		else
			usleep((useconds_t)r->idle_sleep_us);
	}
}

static void step(struct oms_replay *r)
{
	r->stats.steps++;
	__atomic_store_n(&r->steps, r->steps + 1, __ATOMIC_RELEASE);
	wait_acked(r);
}

/* The time of the next capture frame, reading the next burst when the
 * last is used up; NO_TIME at the end of the capture (net_pcap returns
 * nothing once pcap_next_ex has nothing). */
static uint64_t capture_next(struct oms_replay *r)
{
	if (r->cap_i == r->cap_n) {
		if (r->cap_eof)
			return NO_TIME;
		r->cap_i = 0;
		r->cap_n = rte_eth_rx_burst(r->capture_port, 0, r->cap, OMS_BURST);
		if (r->cap_n == 0) {
			r->cap_eof = 1;
			return NO_TIME;
		}
		if (r->stats.capture_frames == 0)
			r->first_capture_raw = *mbuf_ts(r->cap[0]);
		r->stats.capture_frames += r->cap_n;
	}
	return *mbuf_ts(r->cap[r->cap_i]) * r->capture_ts_scale + r->capture_ts_base;
}

/* The time of the next answer; NO_TIME when none is queued.  The main
 * lcore queues answers in time order (one venue latency after the frame
 * they answer), and only while this loop waits. */
static uint64_t answer_next(struct oms_replay *r)
{
	if (r->ans_i == r->ans_n) {
		r->ans_i = 0;
		r->ans_n = rte_eth_rx_burst(r->venue_port, 0, r->ans, OMS_BURST);
		if (r->ans_n == 0)
			return NO_TIME;
		r->stats.answer_frames += r->ans_n;
	}
	return *mbuf_ts(r->ans[r->ans_i]);
}

/* Waits while the main lcore empties the venue port's TX ring. */
static void wait_tx_room(struct oms_replay *r)
{
	r->stats.tx_full_waits++;
	if (r->idle_sleep_us)
		usleep((useconds_t)r->idle_sleep_us);
	else
		rte_pause();
}

/* n frames of a transmit area (OMS_TX_SLOT apart), in order, stamped with
 * now, out of the venue port.  Returns whether any of it went to a venue. */
static int send_area(struct oms_replay *r, const uint8_t *buf, const uint16_t *lens,
		     uint32_t n, uint64_t now)
{
	struct rte_mbuf *m[OMS_BURST];
	int to_venue = 0;

	for (uint32_t i = 0; i < n;) {
		uint32_t k = n - i < OMS_BURST ? n - i : OMS_BURST;
		if (rte_pktmbuf_alloc_bulk(r->pool, m, k) != 0) {
			r->stats.tx_dropped += k;
			i += k;
			continue;
		}
		for (uint32_t j = 0; j < k; j++) {
			const uint8_t *f = buf + (size_t)(i + j) * OMS_TX_SLOT;
			rte_memcpy(rte_pktmbuf_append(m[j], lens[i + j]), f, lens[i + j]);
			*mbuf_ts(m[j]) = now;
			/* the core builds untagged IPv4/UDP: source port at 34 */
			to_venue |= ((f[34] << 8) | f[35]) != r->strategy_udp;
		}
		uint32_t sent = 0;
		while (sent < k && !r->stop) {
			sent += rte_eth_tx_burst(r->venue_port, 0, m + sent, (uint16_t)(k - sent));
			if (sent < k)
				wait_tx_room(r);
		}
		if (sent < k) {
			r->stats.tx_dropped += k - sent;
			rte_pktmbuf_free_bulk(m + sent, k - sent);
		}
		r->stats.tx_frames += sent;
		i += k;
	}
	return to_venue;
}

/* What the feeds (re-requests, as the pcap backend sends them first) and
 * then the core sent. */
static int send_tx(struct oms_replay *r, uint64_t now)
{
	int to_venue = 0;

	for (uint32_t i = 0; r->md && i < oms_md_feeds(r->md); i++) {
		struct oms_feed *f = oms_md_feed(r->md, i);
		to_venue |= send_area(r, oms_feed_tx_buf(f), oms_feed_tx_lens(f),
				      oms_feed_tx_count(f), now);
		oms_feed_tx_clear(f);
	}
	to_venue |= send_area(r, oms_core_tx_buf(r->core), oms_core_tx_lens(r->core),
			      oms_core_tx_count(r->core), now);
	oms_core_tx_clear(r->core);
	return to_venue;
}

static int feeds_have_tx(const struct oms_replay *r)
{
	for (uint32_t i = 0; r->md && i < oms_md_feeds(r->md); i++)
		if (oms_feed_tx_count(oms_md_feed(r->md, i)))
			return 1;
	return 0;
}

static int replay_main(void *arg)
{
	struct oms_replay *r = arg;
	struct rte_mbuf *taken[OMS_BURST];
	const uint8_t *frames[OMS_BURST];
	uint16_t lens[OMS_BURST];
	uint64_t prev = 0, timer_call_at = NO_TIME;

	while (!r->stop) {
		uint64_t tc = capture_next(r), ta = answer_next(r), now = tc < ta ? tc : ta;
		/* the scheduler asks for the deadline only after a call */
		if (r->stats.calls) {
			uint64_t td = oms_core_next_deadline(r->core);
			if (td <= r->horizon_ns && td < now) {
				if (timer_call_at != NO_TIME && td <= timer_call_at) {
					/* a timer call at this time left it due: the
					 * scheduler would loop; count it and go on */
					r->stats.stuck_timers++;
				} else {
					now = td;
				}
			}
		}
		if (now == NO_TIME)
			break;
		uint16_t n = 0;
		while (n < OMS_BURST && capture_next(r) == now)
			taken[n++] = r->cap[r->cap_i++];
		while (n < OMS_BURST && answer_next(r) == now)
			taken[n++] = r->ans[r->ans_i++];
		if (now < prev)
			r->stats.time_backwards++;
		for (uint16_t i = 0; i < n; i++) {
			frames[i] = rte_pktmbuf_mtod(taken[i], const uint8_t *);
			lens[i] = rte_pktmbuf_data_len(taken[i]);
		}
		/* market data to its feeds first, as the pcap backend does */
		uint16_t nc = r->md ? (uint16_t)oms_md_split(r->md, frames, lens, n, now) : n;
		oms_core_process_burst(r->core, frames, lens, nc, now);
		r->stats.calls++;
		if (n) {
			rte_pktmbuf_free_bulk(taken, n);
			timer_call_at = NO_TIME;
		} else {
			r->stats.timer_calls++;
			timer_call_at = now;
		}
		prev = now;
		if ((oms_core_tx_count(r->core) || feeds_have_tx(r)) && send_tx(r, now) &&
		    r->venue_answers)
			step(r);
	}
	/* stopped early: what is still held goes back to the pool */
	if (r->cap_i < r->cap_n)
		rte_pktmbuf_free_bulk(r->cap + r->cap_i, r->cap_n - r->cap_i);
	if (r->ans_i < r->ans_n)
		rte_pktmbuf_free_bulk(r->ans + r->ans_i, r->ans_n - r->ans_i);
	r->cap_i = r->cap_n = r->ans_i = r->ans_n = 0;
	__atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
	return 0;
}

int oms_replay_launch(struct oms_replay *r, unsigned lcore)
{
	if (oms_ts_offset < 0)
		return -1;
	return rte_eal_remote_launch(replay_main, r, lcore);
}

int oms_vdev_create(const char *name, const char *args)
{
	return rte_vdev_init(name, args);
}

int oms_vdev_remove(const char *name)
{
	return rte_vdev_uninit(name);
}

uint32_t oms_replay_collect(struct rte_ring *ring, uint8_t *out, uint16_t *lens, uint64_t *ts_ns,
			    uint32_t max)
{
	return oms_collect_ts(ring, out, lens, ts_ns, max);
}
