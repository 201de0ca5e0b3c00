/* The I/O lcore of sharded mode (oms_dpdk.h, "Sharded mode"): receive from
 * every port, answer ARP and ICMP, hand each frame to the worker that owns
 * it, and send what the workers produced.  It reads only the frame headers
 * it routes by and never touches a core. */
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <string.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "oms_dpdk.h"

#define IDLE_SPINS 1024
#define TX_RETRIES 64

_Static_assert((int)OMS_LANES <= (int)OMS_MAX_WORKERS, "a burst is split by lane in the per-worker arrays");

/* typed mode: each frame's arrival number, in an mbuf dynamic field */
int oms_arrival_offset = -1;

unsigned oms_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

/* Which worker owns the frame: strategy datagrams by (source address,
 * source port), everything else by source address (venues); what matches
 * no route goes to worker 0, whose core counts why it drops it. */
static uint16_t route(struct oms_io *io, const uint8_t *f, uint32_t len)
{
	uint32_t off = 14;

	if (len < 14)
		return UINT16_MAX;
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x8100 && len >= 18) {
		type = (uint16_t)(f[16] << 8 | f[17]);
		off = 18;
	}
	if (type != 0x0800 || len < off + 20 || f[off + 9] != 17)
		return UINT16_MAX;
	uint32_t ihl = (f[off] & 0xfu) * 4u;
	if (len < off + ihl + 8)
		return UINT16_MAX;
	uint32_t src = (uint32_t)f[off + 12] << 24 | (uint32_t)f[off + 13] << 16 |
		       (uint32_t)f[off + 14] << 8 | f[off + 15];
	const uint8_t *udp = f + off + ihl;
	uint16_t sport = (uint16_t)(udp[0] << 8 | udp[1]);
	uint16_t dport = (uint16_t)(udp[2] << 8 | udp[3]);
	uint16_t want = dport == io->strategy_udp ? sport : 0;
	for (uint32_t i = 0; i < io->n_routes; i++)
		if (io->routes[i].ip == src && io->routes[i].port == want)
			return io->routes[i].worker;
	return UINT16_MAX;
}

/* Typed mode: the lane of a frame, from its first strategy message's type
 * (and a NewOrder's flags); anything it cannot read goes the normal way,
 * to the core that counts why it drops it. */
static uint16_t lane_of(struct oms_io *io, const uint8_t *f, uint32_t len)
{
	uint32_t off = 14;

	if (len < 14)
		return OMS_LANE_NORMAL;
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x8100 && len >= 18) {
		type = (uint16_t)(f[16] << 8 | f[17]);
		off = 18;
	}
	if (type != 0x0800 || len < off + 20 || f[off + 9] != 17)
		return OMS_LANE_NORMAL;
	uint32_t ihl = (f[off] & 0xfu) * 4u;
	const uint8_t *udp = f + off + ihl;
	if (len < off + ihl + 8 + sizeof(struct sp_header) ||
	    (uint16_t)(udp[2] << 8 | udp[3]) != io->strategy_udp)
		return OMS_LANE_NORMAL;
	const uint8_t *m = udp + 8;
	switch (m[offsetof(struct sp_header, type)]) {
	case SP_MODIFY:
		return OMS_LANE_MODIFY;
	case SP_CANCEL:
	case SP_MASS_CANCEL:
		return OMS_LANE_CANCEL;
	case SP_NEW_ORDER:
		if (len >= off + ihl + 8 + sizeof(struct sp_new_order) &&
		    (m[offsetof(struct sp_new_order, flags)] & SP_FLAG_PRIORITY))
			return OMS_LANE_HIGH;
		return OMS_LANE_NORMAL;
	default:
		return OMS_LANE_NORMAL;
	}
}

static void tx(struct oms_io *io, uint16_t port, struct rte_mbuf **m, uint16_t k)
{
	uint16_t sent = 0;

	for (int t = 0; t < TX_RETRIES && sent < k; t++) {
		sent += rte_eth_tx_burst(port, 0, m + sent, (uint16_t)(k - sent));
		if (sent < k)
			io->stats.tx_retries++;
	}
	if (sent < k) {
		io->stats.tx_dropped += k - sent;
		rte_pktmbuf_free_bulk(m + sent, k - sent);
	}
	io->stats.tx_frames += sent;
}

/* Send the output waiting in pend[], in order, a batch per port; stop at
 * the first port that does not take all of its batch.  Returns whether
 * all went. */
static int send_pending(struct oms_io *io)
{
	uint16_t i = 0;

	while (i < io->n_pend) {
		uint16_t k = 1;
		while (i + k < io->n_pend && io->pend[i + k]->port == io->pend[i]->port)
			k++;
		uint16_t sent = rte_eth_tx_burst(io->pend[i]->port, 0, io->pend + i, k);
		io->stats.tx_frames += sent;
		i += sent;
		if (sent < k)
			break;
	}
	if (i) {
		memmove(io->pend, io->pend + i, (size_t)(io->n_pend - i) * sizeof(*io->pend));
		io->n_pend -= i;
	}
	return io->n_pend == 0;
}

/* An answer of the link layer (ARP, ICMP echo) for `port`: queued behind
 * what waits for a port, so that a momentarily full port delays it rather
 * than drops it; only with the queue full does it get tx()'s tries. */
static void link_answer(struct oms_io *io, uint16_t port, struct rte_mbuf *r)
{
	if (io->n_pend == RTE_DIM(io->pend)) {
		tx(io, port, &r, 1);
		return;
	}
	r->port = port;
	io->pend[io->n_pend++] = r;
	send_pending(io);
}

/* Send what one worker queued, in its order.  What a full port does not
 * take waits in pend[] and goes first next time; meanwhile nothing more
 * is taken from any out ring, so they back up and the workers wait for
 * room (worker.c out_ring_put) - the cores' output is never dropped here
 * for a port that is only momentarily full.  Returns whether anything was
 * taken. */
static int drain(struct oms_io *io, struct rte_ring *out)
{
	if (io->n_pend && !send_pending(io))
		return 0;
	unsigned n = rte_ring_sc_dequeue_burst(out, (void **)io->pend, OMS_BURST, NULL);
	io->n_pend = (uint16_t)n;
	if (n && !send_pending(io))
		io->stats.tx_waits++;
	return n != 0;
}

/* Stopping, after the workers: what they left is sent, for up to
 * STOP_FLUSH_MS while ports are full; then what is left is counted as
 * dropped. */
#define STOP_FLUSH_MS 100

static void flush_at_stop(struct oms_io *io)
{
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() / 1000 * STOP_FLUSH_MS;

	for (;;) {
		int left = 0;
		for (uint16_t w = 0; w < io->n_workers; w++) {
			while (drain(io, io->out_ring[w]))
				;
			left |= io->n_pend || rte_ring_count(io->out_ring[w]);
		}
		if (!left || rte_rdtsc() > deadline)
			break;
		rte_pause();
	}
	if (io->n_pend) {
		io->stats.tx_dropped += io->n_pend;
		rte_pktmbuf_free_bulk(io->pend, io->n_pend);
		io->n_pend = 0;
	}
	for (uint16_t w = 0; w < io->n_workers; w++) {
		struct rte_mbuf *m[OMS_BURST];
		unsigned n;
		while ((n = rte_ring_sc_dequeue_burst(io->out_ring[w], (void **)m, OMS_BURST,
						      NULL)) != 0) {
			io->stats.tx_dropped += n;
			rte_pktmbuf_free_bulk(m, n);
		}
	}
}

static int receive(struct oms_io *io, uint16_t port)
{
	struct rte_mbuf *m[OMS_BURST];
	struct rte_mbuf *to[OMS_MAX_WORKERS][OMS_BURST]; /* typed: by lane */
	uint16_t nto[OMS_MAX_WORKERS] = {0};
	uint8_t out[LINK_MAX_FRAME];
	/* take no more than every worker has room for: a busy worker makes
	 * the port's queue fill (counted by the NIC as missed), it never has
	 * frames that were received dropped */
	uint16_t room = OMS_BURST;
	for (uint16_t w = 0; w < io->n_workers && !io->typed; w++) {
		unsigned free = rte_ring_free_count(io->in_ring[w]);
		if (free < room)
			room = (uint16_t)free;
	}
	for (uint16_t l = 0; l < OMS_LANES && io->typed; l++) {
		unsigned free = rte_ring_free_count(io->lane[l]);
		if (free < room)
			room = (uint16_t)free;
	}
	if (io->typed) { /* nor more than the placement worker's window holds */
		uint32_t ahead = io->next_arrival -
				 __atomic_load_n(&io->merge->consumed, __ATOMIC_ACQUIRE);
		uint32_t left = OMS_TYPED_WINDOW - ahead;
		if (left < room)
			room = (uint16_t)left;
	}
	if (room == 0)
		return 0;
	uint16_t n = rte_eth_rx_burst(port, 0, m, room);

	io->stats.rx_frames += n;
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *f = rte_pktmbuf_mtod(m[i], const uint8_t *);
		uint32_t len = rte_pktmbuf_data_len(m[i]);
		uint32_t out_len = 0;
		if (link_handle(f, len, io->mac, io->ip, out, &out_len, &io->link)) {
			struct rte_mbuf *r = out_len ? rte_pktmbuf_alloc(io->pool) : NULL;
			if (r) {
				memcpy(rte_pktmbuf_append(r, (uint16_t)out_len), out, out_len);
				link_answer(io, port, r);
			} else if (out_len) {
				io->stats.tx_dropped++;
			}
			rte_pktmbuf_free(m[i]);
			continue;
		}
		if (io->typed) {
			uint16_t l = lane_of(io, f, len);
			*RTE_MBUF_DYNFIELD(m[i], oms_arrival_offset, uint32_t *) = io->next_arrival++;
			to[l][nto[l]++] = m[i];
			continue;
		}
		uint16_t w = route(io, f, len);
		if (w >= io->n_workers) {
			io->stats.unrouted++;
			w = 0;
		}
		to[w][nto[w]++] = m[i];
	}
	for (uint16_t l = 0; l < OMS_LANES && io->typed; l++) {
		if (!nto[l])
			continue;
		/* room was made for all of them: each lane takes its share */
		unsigned q = rte_ring_sp_enqueue_burst(io->lane[l], (void **)to[l], nto[l], NULL);
		io->lane_tx[l] += q;
		io->stats.to_worker[0] += q;
		if (q < nto[l]) { /* cannot happen: counted if it ever does */
			io->stats.worker_ring_full += nto[l] - q;
			rte_pktmbuf_free_bulk(to[l] + q, nto[l] - q);
		}
	}
	for (uint16_t w = 0; w < io->n_workers && !io->typed; w++) {
		if (!nto[w])
			continue;
		unsigned q = rte_ring_sp_enqueue_burst(io->in_ring[w], (void **)to[w], nto[w], NULL);
		io->stats.to_worker[w] += q;
		if (q < nto[w]) {
			/* overload: reported, never silent */
			io->stats.worker_ring_full += nto[w] - q;
			rte_pktmbuf_free_bulk(to[w] + q, nto[w] - q);
		}
	}
	return n != 0;
}

static int io_main(void *arg)
{
	struct oms_io *io = arg;
	uint32_t idle = 0;

	for (;;) {
		int busy = 0, stopping = io->stop;
		for (uint16_t p = 0; p < io->n_rx && !io->rx_off; p++)
			busy |= receive(io, io->rx_port[p]);
		for (uint16_t w = 0; w < io->n_workers; w++)
			while (drain(io, io->out_ring[w]))
				busy = 1;
		if (stopping) { /* the workers had stopped: the last drain */
			flush_at_stop(io);
			break;
		}
		if (busy) {
			io->stats.busy_polls++;
			idle = 0;
			continue;
		}
		io->stats.idle_polls++;
		if (++idle < IDLE_SPINS || io->idle_sleep_us == 0)
			rte_pause();
		else
			usleep((useconds_t)io->idle_sleep_us);
	}
	for (uint16_t p = 0; p < io->n_rx; p++)
		rte_eth_tx_done_cleanup(io->rx_port[p], 0, 0);
	return 0;
}

int oms_io_launch(struct oms_io *io, unsigned lcore)
{
	static const struct rte_mbuf_dynfield arrival = {
		.name = "oms_dynfield_arrival",
		.size = sizeof(uint32_t),
		.align = __alignof__(uint32_t),
	};
	uint8_t g[64];

	io->n_pend = 0;
	if (io->typed) {
		oms_arrival_offset = rte_mbuf_dynfield_register(&arrival);
		if (oms_arrival_offset < 0)
			return -1;
	}
	uint32_t len = link_gratuitous_arp(io->mac, io->ip, g);

	/* announce ourselves on every port */
	for (uint16_t p = 0; p < io->n_rx; p++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(io->pool);
		if (!m)
			return -1;
		memcpy(rte_pktmbuf_append(m, (uint16_t)len), g, len);
		tx(io, io->rx_port[p], &m, 1);
	}
	return rte_eal_remote_launch(io_main, io, lcore);
}
