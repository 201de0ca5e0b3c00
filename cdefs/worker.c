/* The worker loop, one per worker lcore, in the manner of DPDK's l2fwd:
 * receive a burst, hand it to the core with its time, transmit what the
 * core produced, and back off when idle.  Everything it touches is in its
 * own struct oms_worker and its own core. */
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "oms_dpdk.h"

extern int oms_ts_offset;
extern int oms_arrival_offset;

/* polls with nothing to do before the worker starts sleeping */
#define IDLE_SPINS 1024
/* how long the worker waits for a port to take a burst it did not take at
 * once: several times what a NIC needs to send a whole TX ring at 10 Gb/s,
 * so a burst of output (a mass cancel of thousands of orders) waits for
 * the port instead of being dropped; a port that takes nothing in that
 * time is stuck (link down): it gets one try per burst until it takes a
 * frame again, so that it cannot stall the worker's other ports */
#define TX_WAIT_US 1000
/* sharded: how long the worker waits (yielding every 64 tries) for the
 * I/O lcore to make room on its out ring before output is counted as
 * dropped: an I/O lcore that has not drained for that long has failed,
 * and until then nothing is lost - even when the two share one CPU */
#define OUT_RING_WAIT_MS 500

/* The DPDK benchmark compiles this file into itself (bench/dpdk_bench.c)
 * so that its full-pipeline run times this loop, not a copy of it: it
 * defines these hooks first.  In the appliance they are empty. */
#ifndef OMS_WORKER_HOOKS
#define OMS_WORKER_START(w) do { } while (0)
#define OMS_WORKER_POLL(w) do { } while (0)
#define OMS_WORKER_RX_TSC() 0
#define OMS_WORKER_RX_DONE(w, t_rx, n) do { } while (0)
#define OMS_WORKER_STOP(w) do { } while (0)
#endif

static inline uint64_t mbuf_ts(struct rte_mbuf *m)
{
	return *RTE_MBUF_DYNFIELD(m, oms_ts_offset, uint64_t *);
}

static inline uint64_t live_now(const struct oms_worker *w)
{
	return w->wall_base_ns + (uint64_t)((double)(rte_rdtsc() - w->tsc_base) * w->ns_per_tsc);
}

/* `done` has one writer, this lcore: a release store, not a locked add,
 * publishes the count to Python, which only reads it. */
static inline void done_add(struct oms_worker *w, uint64_t n)
{
	__atomic_store_n(&w->done, w->done + n, __ATOMIC_RELEASE);
}

/* The out ring is ours to wait for: the I/O lcore drains it, also when it
 * has to share our CPU (then it needs us to yield).  A wait is counted
 * (out_ring_waits: the I/O lcore is the bottleneck); returns how many went. */
static uint32_t out_ring_put(struct oms_worker *w, struct rte_mbuf **m, uint32_t k)
{
	uint32_t sent = rte_ring_sp_enqueue_burst(w->out_ring, (void **)m, k, NULL);

	if (sent == k)
		return sent;
	w->stats.out_ring_waits++;
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() / 1000 * OUT_RING_WAIT_MS;
	for (uint32_t t = 1; sent < k; t++) {
		if (t % 64 == 0) {
			if (rte_rdtsc() > deadline)
				break;
			sched_yield();
		}
		sent += rte_ring_sp_enqueue_burst(w->out_ring, (void **)(m + sent), k - sent, NULL);
	}
	return sent;
}

/* Returns how many of the k frames port took. */
static uint32_t port_put(struct oms_worker *w, uint16_t port, struct rte_mbuf **m, uint32_t k)
{
	uint32_t bit = port < 32 ? 1u << port : 0;
	uint32_t sent = rte_eth_tx_burst(port, w->tx_queue, m, (uint16_t)k);

	if (sent == k) {
		w->tx_stuck &= ~bit;
		return sent;
	}
	w->stats.tx_retries++;
	if (w->tx_stuck & bit) {
		if (sent)
			w->tx_stuck &= ~bit;
		return sent;
	}
	uint32_t before = sent;
	uint64_t wait_us = w->tx_wait_us ? w->tx_wait_us : TX_WAIT_US;
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() / 1000000 * wait_us;
	while (sent < k && rte_rdtsc() < deadline)
		sent += rte_eth_tx_burst(port, w->tx_queue, m + sent, (uint16_t)(k - sent));
	if (sent == before)
		w->tx_stuck |= bit;
	return sent;
}

static void send_frames(struct oms_worker *w, uint16_t port, struct rte_mbuf **m, uint32_t k)
{
	uint32_t sent = 0;

	if (w->repl && !oms_repl_may_transmit(w->repl)) { /* backup, or fenced */
		oms_repl_count_fenced(w->repl, k);
		rte_pktmbuf_free_bulk(m, k);
		return;
	}
	if (w->out_ring) { /* sharded: the I/O lcore sends them */
		for (uint32_t i = 0; i < k; i++)
			m[i]->port = port;
		sent = out_ring_put(w, m, k);
	} else {
		sent = port_put(w, port, m, k);
	}
	if (sent < k) {
		w->stats.tx_dropped += k - sent;
		rte_pktmbuf_free_bulk(m + sent, k - sent);
	}
	w->stats.tx_frames += sent;
}

static struct rte_mbuf *frame_mbuf(struct oms_worker *w, const uint8_t *data, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->pool);

	if (!m) {
		w->stats.mbuf_alloc_failed++;
		w->stats.tx_dropped++;
		return NULL;
	}
	rte_memcpy(rte_pktmbuf_append(m, (uint16_t)len), data, len);
	return m;
}

static inline void fill_mbuf(struct rte_mbuf *m, const uint8_t *data, uint32_t len)
{
	rte_memcpy(rte_pktmbuf_append(m, (uint16_t)len), data, len);
}

/* The mbufs a burst's output goes into were last written by another
 * CPU (the lcore or NIC that filled them, or freed them): taken a burst
 * ahead, their header and first data lines prefetched for writing, the
 * misses overlap the core's work on the next burst instead of stalling
 * the copy.  Topped up to full after every flush, so that between bursts
 * the stash holds a constant number of the pool's mbufs (a leak check
 * watching the pool's use sees no swing).  Short of mbufs, nothing is
 * taken: flush_tx allocates. */
static void tx_stash_refill(struct oms_worker *w)
{
	uint32_t want = OMS_TX_STASH - w->n_stash;

	if (want == 0 || rte_mempool_get_bulk(w->pool, (void **)(w->tx_stash + w->n_stash),
					      want) != 0)
		return;
	for (uint32_t i = w->n_stash; i < OMS_TX_STASH; i++) {
		char *mb = (char *)w->tx_stash[i];
		rte_prefetch0_write(mb);
		rte_prefetch0_write(mb + w->stash_data_off);
		rte_prefetch0_write(mb + w->stash_data_off + RTE_CACHE_LINE_SIZE);
	}
	w->n_stash = OMS_TX_STASH;
}

/* A stashed or reused mbuf as rte_pktmbuf_reset would leave it, for what
 * a port reads of a single-segment frame without offloads: a free mbuf
 * already has refcnt 1, next NULL and nb_segs 1 (the pool's contract), as
 * has a reusable received one, so its second header line is never
 * written. */
static inline void stash_fill(const struct oms_worker *w, struct rte_mbuf *m,
			      const uint8_t *data, uint32_t len)
{
	m->data_off = (uint16_t)w->stash_headroom;
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	m->ol_flags = 0;
	m->port = RTE_MBUF_PORT_INVALID;
	rte_memcpy(rte_pktmbuf_mtod(m, uint8_t *), data, len);
}

/* What the pool hands out and takes back as it is: direct, one segment
 * (so `next` is NULL), one reference. */
static inline int plain_mbuf(const struct rte_mbuf *m)
{
	return RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && m->nb_segs == 1;
}

/* A received mbuf the core has finished with can carry its output, as
 * the null pipeline sends its received mbufs back out: its lines are in
 * this CPU's cache already (prefetched on arrival, read by the core), and
 * it need not be freed; a fresh mbuf's lines were last written by whoever
 * freed it.  It must be plain, with room for a whole frame at the pool's
 * headroom. */
static inline int reusable(const struct oms_worker *w, const struct rte_mbuf *m)
{
	return plain_mbuf(m) && m->buf_len >= w->stash_headroom + OMS_TX_SLOT;
}

/* Up to `want` mbufs for output from the received ones (w->reuse), in
 * order; the first that will not do ends the taking, and it and the rest
 * are freed as usual. */
static uint32_t take_received(struct oms_worker *w, struct rte_mbuf **fresh, uint32_t want)
{
	uint32_t got = 0;

	while (got < want && w->n_reuse && reusable(w, *w->reuse)) {
		fresh[got++] = *w->reuse++;
		w->n_reuse--;
	}
	return got;
}

static void tx_stash_return(struct oms_worker *w)
{
	if (w->n_stash)
		rte_mempool_put_bulk(w->pool, (void **)w->tx_stash, w->n_stash);
	w->n_stash = 0;
}

/* Transmit the core's frames: copied into mbufs - the burst's received
 * ones while they last (take_received), then fresh ones - (the core builds
 * them in its own transmit area), gathered per port in the core's order -
 * a NewOrder's acknowledgement and venue order alternate between two
 * ports, and one TX burst per frame would cost more than the frame - sent
 * in bursts and retried while the port is momentarily full; whatever still
 * does not go is counted. */
static void flush_tx(struct oms_worker *w)
{
	uint32_t n = oms_core_tx_count(w->core);
	const uint8_t *buf = oms_core_tx_buf(w->core);
	const uint16_t *lens = oms_core_tx_lens(w->core);
	struct rte_mbuf *fresh[OMS_BURST];
	struct rte_mbuf *out[2][OMS_BURST];
	/* one port for both: one batch, so the core's order holds across them */
	int two = w->strategy_tx_port != w->venue_tx_port;

	for (uint32_t base = 0; base < n; base += OMS_BURST) {
		uint32_t m = n - base < OMS_BURST ? n - base : OMS_BURST;
		uint32_t k[2] = {0, 0};
		/* received mbufs first, then the stash, then the pool */
		uint32_t ready = take_received(w, fresh, m);
		uint32_t from_stash = RTE_MIN(m - ready, w->n_stash);
		w->n_stash -= from_stash;
		for (uint32_t i = 0; i < from_stash; i++)
			fresh[ready + i] = w->tx_stash[w->n_stash + i];
		ready += from_stash;
		int bulk = ready == m ||
			   rte_pktmbuf_alloc_bulk(w->pool, fresh + ready, m - ready) == 0;
		for (uint32_t i = 0; i < m; i++) {
			const uint8_t *f = buf + (size_t)(base + i) * OMS_TX_SLOT;
			uint16_t len = lens[base + i];
			struct rte_mbuf *mb;
			if (i < ready) {
				mb = fresh[i];
				stash_fill(w, mb, f, len);
			} else if (bulk) {
				mb = fresh[i];
				fill_mbuf(mb, f, len);
			} else if (!(mb = frame_mbuf(w, f, len))) { /* pool short: counted */
				continue;
			}
			/* the core builds untagged IPv4/UDP: source port at 34 */
			int venue = two && ((f[34] << 8) | f[35]) != w->strategy_udp;
			out[venue][k[venue]++] = mb;
		}
		if (k[0])
			send_frames(w, two ? w->strategy_tx_port : w->venue_tx_port, out[0], k[0]);
		if (k[1])
			send_frames(w, w->venue_tx_port, out[1], k[1]);
	}
	oms_core_tx_clear(w->core);
	tx_stash_refill(w);
}

/* The feeds' re-requests and the IGMPv3 host's reports go out towards the
 * venues (the market-data port); this worker is the port queue's one
 * writer. */
static void flush_feed_tx(struct oms_worker *w)
{
	struct oms_igmp *g = oms_md_igmp(w->md);

	for (uint32_t k = 0; g && k < oms_igmp_tx_count(g); k++) {
		struct rte_mbuf *m = frame_mbuf(w, oms_igmp_tx_buf(g) + (size_t)k * OMS_TX_SLOT,
						oms_igmp_tx_lens(g)[k]);
		if (m)
			send_frames(w, w->venue_tx_port, &m, 1);
	}
	if (g)
		oms_igmp_tx_clear(g);
	for (uint32_t i = 0; i < oms_md_feeds(w->md); i++) {
		struct oms_feed *f = oms_md_feed(w->md, i);
		for (uint32_t k = 0; k < oms_feed_tx_count(f); k++) {
			struct rte_mbuf *m = frame_mbuf(w, oms_feed_tx_buf(f) + (size_t)k * OMS_TX_SLOT,
							oms_feed_tx_lens(f)[k]);
			if (m)
				send_frames(w, w->venue_tx_port, &m, 1);
		}
		oms_feed_tx_clear(f);
	}
}

/* A burst's frames were written by another CPU (the NIC's DMA, or in
 * the benchmark the lcore that offers them): start every miss at once -
 * each mbuf's first line and its frame's first two - so that they overlap
 * instead of each stalling the core in turn.  A received mbuf's data sits
 * where a reset leaves it (the pool's layout, as for the TX stash), so its
 * address is known without waiting for the mbuf's line to arrive; an mbuf
 * whose data is elsewhere costs two wasted prefetches. */
static inline void prefetch_burst(const struct oms_worker *w, struct rte_mbuf **m, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		const char *mb = (const char *)m[i];
		rte_prefetch0(mb);
		rte_prefetch0(mb + w->stash_data_off);
		rte_prefetch0(mb + w->stash_data_off + RTE_CACHE_LINE_SIZE);
	}
}

/* ARP and ICMP echo are answered here, on the port they came in on; the
 * rest is left in m[] for the core.  Returns how many are left. */
static uint16_t take_link_frames(struct oms_worker *w, uint16_t port, struct rte_mbuf **m,
				 uint16_t n)
{
	uint8_t out[LINK_MAX_FRAME];
	uint16_t keep = 0;

	for (uint16_t i = 0; i < n; i++) {
		uint32_t out_len = 0;
		if (link_handle(rte_pktmbuf_mtod(m[i], const uint8_t *), rte_pktmbuf_data_len(m[i]),
				w->mac, w->ip, out, &out_len, &w->link)) {
			if (out_len) {
				struct rte_mbuf *r = frame_mbuf(w, out, out_len);
				if (r)
					send_frames(w, port, &r, 1);
			}
			rte_pktmbuf_free(m[i]);
			continue;
		}
		m[keep++] = m[i];
	}
	return keep;
}

/* Received mbufs back to their pool without rte_pktmbuf_free_bulk's read
 * of `next`, which sits in the mbuf's second line: the lcore or PMD that
 * filled the mbuf wrote that line last (rte_pktmbuf_reset), so the read
 * is a miss per frame, and one that nothing prefetched.  A direct,
 * single-segment mbuf holding its one reference already is what the pool
 * wants back (`next` is NULL in a one-segment chain), as DPDK's
 * MBUF_FAST_FREE also assumes; any other goes the usual way. */
static void free_received(struct rte_mbuf **m, uint16_t n)
{
	void *run[OMS_BURST];
	struct rte_mempool *pool = NULL;
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *b = m[i];
		if (!plain_mbuf(b)) {
			rte_pktmbuf_free(b);
			continue;
		}
		if (k && (b->pool != pool || k == OMS_BURST)) {
			rte_mempool_put_bulk(pool, run, k);
			k = 0;
		}
		pool = b->pool;
		run[k++] = b;
	}
	if (k)
		rte_mempool_put_bulk(pool, run, k);
}

/* Hand n received mbufs to the core.  In replay, frames of one burst may
 * carry different times: each run of equal times is one call.  Returns the
 * time of the last call, which the poll's timer check can use instead of
 * reading the clock again (a TSC read and its conversion are ~15 ns, a
 * tenth of a frame's work). */
static uint64_t handle_rx(struct oms_worker *w, struct rte_mbuf **m, uint16_t n)
{
	uint64_t now = 0;
	/* typed mode hands over up to a batch, the other modes a burst */
	const uint8_t *frames[OMS_TYPED_BATCH];
	uint16_t lens[OMS_TYPED_BATCH];
	/* what flush_tx did not reuse */
	struct rte_mbuf *unused[OMS_TYPED_BATCH];
	uint16_t i = 0, n_unused = 0;

	while (i < n) {
		now = w->mode == OMS_MODE_REPLAY ? mbuf_ts(m[i]) : live_now(w);
		uint16_t k = 0;
		while (i + k < n && (w->mode != OMS_MODE_REPLAY || mbuf_ts(m[i + k]) == now)) {
			frames[k] = rte_pktmbuf_mtod(m[i + k], const uint8_t *);
			lens[k] = rte_pktmbuf_data_len(m[i + k]);
			k++;
		}
		uint32_t kc = k;
		if (w->md) { /* market data to its feeds before the core reads them */
			kc = oms_md_split(w->md, frames, lens, k, now);
			flush_feed_tx(w);
		}
		oms_journal_before_burst(w->journal, w->core, now);
		oms_core_process_burst(w->core, frames, lens, kc, now);
		oms_journal_after_burst(w->journal, w->core, frames, lens, kc, now);
		/* the journal has copied these frames, the feeds and the core
		 * are done with them: their mbufs may carry the output */
		w->reuse = m + i;
		w->n_reuse = k;
		flush_tx(w);
		for (uint32_t u = 0; u < w->n_reuse; u++)
			unused[n_unused++] = w->reuse[u];
		w->n_reuse = 0;
		i += k;
	}
	free_received(unused, n_unused);
	return now;
}

/* Control-plane commands run between bursts, so the core never sees one
 * in the middle of a burst. */
static void run_command(struct oms_worker *w, struct oms_command *cmd)
{
	uint64_t now = cmd->now_ns ? cmd->now_ns : live_now(w);

	if (w->md) { /* a replay tick runs the feeds' timers too */
		oms_md_timers(w->md, now);
		flush_feed_tx(w);
	}
	oms_command_apply(w->core, cmd, now);
	oms_journal_after_command(w->journal, w->core, cmd, now);
	flush_tx(w);
	w->stats.commands++;
	__atomic_store_n(&cmd->done, 1, __ATOMIC_RELEASE);
	done_add(w, 1);
}

/* Typed mode, the placement worker: take whatever the lanes hold, put
 * each frame at its arrival number in the window, and hand the core the
 * frames that are next in arrival order - a Modify or Cancel that raced
 * ahead of an earlier frame through its worker waits there for it.  One
 * call takes up to a batch, so the core can run its Cancels before the
 * normal orders queued with them. */
static int typed_poll(struct oms_worker *w)
{
	struct oms_typed *t = w->typed;
	struct rte_mbuf *m[OMS_BURST];
	struct rte_mbuf *batch[OMS_TYPED_BATCH];
	int took = 0;

	/* the window has room for all: the I/O lcore never gets further
	 * ahead of `consumed` than it holds */
	for (uint16_t l = 0; l < OMS_LANES; l++) {
		unsigned n;
		do {
			n = rte_ring_sc_dequeue_burst(t->lane[l], (void **)m, OMS_BURST, NULL);
			for (unsigned i = 0; i < n; i++) {
				uint32_t a = *RTE_MBUF_DYNFIELD(m[i], oms_arrival_offset, uint32_t *);
				t->window[a & (OMS_TYPED_WINDOW - 1)] = m[i];
			}
			t->stats.lane_rx[l] += n;
			took += (int)n;
		} while (n == OMS_BURST);
	}
	uint16_t k = 0;
	uint32_t lim = t->batch && t->batch < OMS_TYPED_BATCH ? t->batch : OMS_TYPED_BATCH;
	for (;;) {
		struct rte_mbuf **slot = &t->window[t->next & (OMS_TYPED_WINDOW - 1)];
		if (k == lim || !*slot) {
			if (!k)
				break;
			w->stats.rx_frames += k;
			handle_rx(w, batch, k);
			t->stats.batches++;
			__atomic_store_n(&t->consumed, t->next, __ATOMIC_RELEASE);
			done_add(w, k);
			k = 0;
			continue;
		}
		batch[k++] = *slot;
		*slot = NULL;
		t->next++;
	}
	/* what is left waits for an earlier frame still in a lane */
	uint32_t arrived = 0;
	for (uint16_t l = 0; l < OMS_LANES; l++)
		arrived += (uint32_t)t->stats.lane_rx[l];
	t->stats.waits += arrived - t->next != 0;
	return took;
}

static void announce(struct oms_worker *w)
{
	uint8_t g[64];
	uint32_t len = link_gratuitous_arp(w->mac, w->ip, g);

	for (uint16_t p = 0; p < w->n_rx; p++) {
		struct rte_mbuf *m = frame_mbuf(w, g, len);
		if (m)
			send_frames(w, w->rx_port[p], &m, 1);
	}
}

/* A backup (or a fenced primary): the replication link is its only input;
 * what the ports bring (floods, broadcasts) is dropped, commands that
 * would change the core are refused (result -1), reads answered. */
static int passive_poll(struct oms_worker *w, struct rte_mbuf **m)
{
	int busy = 0;
	void *cmd;

	for (uint16_t p = 0; p < w->n_rx; p++) {
		uint16_t n = rte_eth_rx_burst(w->rx_port[p], w->rx_queue[p], m, OMS_BURST);
		if (n) {
			busy = 1;
			w->stats.rx_frames += n;
			rte_pktmbuf_free_bulk(m, n);
		}
	}
	if (w->commands && rte_ring_dequeue(w->commands, &cmd) == 0) {
		struct oms_command *c = cmd;
		if (c->op == OMS_CMD_SNAPSHOT || c->op == OMS_CMD_ORDER || c->op == OMS_CMD_SYNC)
			oms_command_apply(w->core, c, live_now(w));
		else
			c->result = -1;
		oms_core_tx_clear(w->core);
		w->stats.commands++;
		__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
		done_add(w, 1);
		busy = 1;
	}
	return busy;
}

/* poll_rx's source: the sharded mode's ring from the I/O lcore */
#define RX_IN_RING (-1)
/* under load, bursts handled from one queue in one poll at most, so that
 * the other queues, commands and timers wait for no more than that */
#define RX_AHEAD_BURSTS 4

/* A burst from `src`: a port's queue, or RX_IN_RING */
static inline uint16_t rx_take(struct oms_worker *w, int src, struct rte_mbuf **m)
{
	return src == RX_IN_RING ?
		(uint16_t)rte_ring_sc_dequeue_burst(w->in_ring, (void **)m, OMS_BURST, NULL) :
		rte_eth_rx_burst(w->rx_port[src], w->rx_queue[src], m, OMS_BURST);
}

/* Handle what `src` holds.  A full burst means more may be waiting: the
 * next burst is taken, and its misses started, before this one is handled,
 * so they overlap the core's work on this one instead of stalling the
 * start of the next - every frame and mbuf was last written by another CPU
 * (at the maximum rate, with the two CPUs on different L3 caches, about
 * 2 % of a frame's cost).  A burst that is not full is
 * handled at once: no frame ever waits for the next to arrive.  *now
 * becomes the latest burst's time; returns whether anything came. */
static int poll_rx(struct oms_worker *w, int src, struct rte_mbuf **m, uint64_t *now)
{
	struct rte_mbuf *other[OMS_BURST];
	struct rte_mbuf **cur = m, **next = other;
	uint16_t n = rx_take(w, src, cur);
	uint64_t t_rx = OMS_WORKER_RX_TSC();
	int got = n != 0;

	if (n)
		prefetch_burst(w, cur, n);
	for (int b = 1; n; b++) {
		uint16_t n_next = 0;
		uint64_t t_next = 0;
		if (n == OMS_BURST && b < RX_AHEAD_BURSTS) {
			n_next = rx_take(w, src, next);
			t_next = OMS_WORKER_RX_TSC();
			if (n_next)
				prefetch_burst(w, next, n_next);
		}
		w->stats.rx_frames += n;
		uint16_t k = n;
		if (src != RX_IN_RING && w->answer_link)
			k = take_link_frames(w, w->rx_port[src], cur, n);
		if (k)
			*now = handle_rx(w, cur, k);
		if (src != RX_IN_RING)
			OMS_WORKER_RX_DONE(w, t_rx, n);
		done_add(w, n);
		struct rte_mbuf **t = cur;
		cur = next;
		next = t;
		n = n_next;
		t_rx = t_next;
	}
	(void)t_rx;
	return got;
}

static int worker_main(void *arg)
{
	struct oms_worker *w = arg;
	struct rte_mbuf *m[OMS_BURST];
	uint32_t idle = 0;

	if (w->rcu) {
		rte_rcu_qsbr_thread_register(w->rcu, w->rcu_id);
		rte_rcu_qsbr_thread_online(w->rcu, w->rcu_id);
	}
	OMS_WORKER_START(w);
	while (!w->stop) {
		int busy = 0;
		uint64_t now = 0; /* the latest burst's time, if any this poll */
		/* between polls the core holds no configuration generation */
		if (w->rcu)
			rte_rcu_qsbr_quiescent(w->rcu, w->rcu_id);
		if (w->typed && typed_poll(w))
			busy = 1;
		if (w->repl) {
			int st = oms_repl_poll(w->repl);
			if (st == OMS_REPL_TAKEOVER) {
				announce(w);
			} else if (st == OMS_REPL_PASSIVE) {
				if (passive_poll(w, m))
					idle = 0;
				else if (++idle >= IDLE_SPINS && w->idle_sleep_us)
					usleep((useconds_t)w->idle_sleep_us);
				continue;
			}
		}
		if (w->in_ring && poll_rx(w, RX_IN_RING, m, &now))
			busy = 1;
		for (int p = 0; p < w->n_rx; p++)
			if (poll_rx(w, p, m, &now))
				busy = 1;
		OMS_WORKER_POLL(w);
		void *cmd;
		if (w->commands && rte_ring_dequeue(w->commands, &cmd) == 0) {
			run_command(w, cmd);
			busy = 1;
		}
		if (w->mode == OMS_MODE_LIVE) {
			if (!now)
				now = live_now(w);
			if (w->md) { /* quiet feeds go stale on time */
				oms_md_timers(w->md, now);
				flush_feed_tx(w);
			}
			if (oms_core_timer_due(w->core, now)) {
				oms_core_process_burst(w->core, NULL, NULL, 0, now);
				oms_journal_after_burst(w->journal, w->core, NULL, NULL, 0, now);
				flush_tx(w);
			}
		}
		if (busy) {
			w->stats.busy_polls++;
			idle = 0;
			continue;
		}
		w->stats.idle_polls++;
		if (++idle < IDLE_SPINS || w->idle_sleep_us == 0) {
			rte_pause();
		} else {
			/* shared CPUs (CI, small machines): give the core back */
			usleep((useconds_t)w->idle_sleep_us);
		}
	}
	/* stopping: what the core still holds to send goes out, the market
	 * data's groups are left, and the ports give back the mbufs of frames
	 * they have finished sending */
	flush_tx(w);
	if (w->md && w->mode == OMS_MODE_LIVE) {
		oms_md_leave_all(w->md, live_now(w));
		flush_feed_tx(w);
	}
	tx_stash_return(w);
	for (uint16_t p = 0; p < w->n_rx && !w->out_ring; p++)
		rte_eth_tx_done_cleanup(w->rx_port[p], w->tx_queue, 0);
	if (w->rcu) {
		rte_rcu_qsbr_thread_offline(w->rcu, w->rcu_id);
		rte_rcu_qsbr_thread_unregister(w->rcu, w->rcu_id);
	}
	OMS_WORKER_STOP(w);
	return 0;
}

int oms_worker_launch(struct oms_worker *w, unsigned lcore)
{
	if (w->mode == OMS_MODE_LIVE) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		w->wall_base_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		w->tsc_base = rte_rdtsc();
		w->ns_per_tsc = 1e9 / (double)rte_get_tsc_hz();
	}
	w->n_stash = 0;
	w->tx_stuck = 0;
	w->stash_headroom = RTE_MIN(RTE_PKTMBUF_HEADROOM, rte_pktmbuf_data_room_size(w->pool));
	w->stash_data_off = (uint32_t)(sizeof(struct rte_mbuf) + rte_pktmbuf_priv_size(w->pool) +
				       w->stash_headroom);
	if (w->answer_link) /* announce ourselves on every port we receive on */
		announce(w);
	return rte_eal_remote_launch(worker_main, w, lcore);
}
