/* The worker loop, one per worker lcore, in the manner of DPDK's l2fwd:
 * receive a burst, hand it to the core with its time, transmit what the
 * core produced, and back off when idle.  Everything it touches is in its
 * own struct oms_worker and its own core. */
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "oms_dpdk.h"

extern int oms_ts_offset;

/* polls with nothing to do before the worker starts sleeping */
#define IDLE_SPINS 1024
/* how often a TX burst that the port did not fully take is retried */
#define TX_RETRIES 64

static inline uint64_t mbuf_ts(struct rte_mbuf *m)
{
	return *RTE_MBUF_DYNFIELD(m, oms_ts_offset, uint64_t *);
}

static inline uint64_t live_now(const struct oms_worker *w)
{
	return w->wall_base_ns + (uint64_t)((double)(rte_rdtsc() - w->tsc_base) * w->ns_per_tsc);
}

/* Transmit the core's frames: copied into fresh mbufs (the core builds
 * them in its own transmit area), sent in bursts, retried while the port
 * is momentarily full; whatever still does not go is counted. */
static void flush_tx(struct oms_worker *w)
{
	uint32_t n = oms_core_tx_count(w->core);
	const uint8_t *buf = oms_core_tx_buf(w->core);
	const uint16_t *lens = oms_core_tx_lens(w->core);
	struct rte_mbuf *m[OMS_BURST];

	for (uint32_t i = 0; i < n; i += OMS_BURST) {
		uint32_t k = n - i < OMS_BURST ? n - i : OMS_BURST;
		if (rte_pktmbuf_alloc_bulk(w->pool, m, k) != 0) {
			w->stats.mbuf_alloc_failed += k;
			w->stats.tx_dropped += k;
			continue;
		}
		for (uint32_t j = 0; j < k; j++) {
			char *d = rte_pktmbuf_append(m[j], lens[i + j]);
			rte_memcpy(d, buf + (size_t)(i + j) * OMS_TX_SLOT, lens[i + j]);
		}
		uint32_t sent = 0;
		for (int t = 0; t < TX_RETRIES && sent < k; t++) {
			sent += rte_eth_tx_burst(w->tx_port, w->tx_queue, m + sent,
						 (uint16_t)(k - sent));
			if (sent < k)
				w->stats.tx_retries++;
		}
		if (sent < k) {
			w->stats.tx_dropped += k - sent;
			rte_pktmbuf_free_bulk(m + sent, k - sent);
		}
		w->stats.tx_frames += sent;
	}
	oms_core_tx_clear(w->core);
}

/* Hand n received mbufs to the core.  In replay, frames of one burst may
 * carry different times: each run of equal times is one call. */
static void handle_rx(struct oms_worker *w, struct rte_mbuf **m, uint16_t n)
{
	const uint8_t *frames[OMS_BURST];
	uint16_t lens[OMS_BURST];
	uint16_t i = 0;

	while (i < n) {
		uint64_t now = w->mode == OMS_MODE_REPLAY ? mbuf_ts(m[i]) : live_now(w);
		uint16_t k = 0;
		while (i + k < n && (w->mode != OMS_MODE_REPLAY || mbuf_ts(m[i + k]) == now)) {
			frames[k] = rte_pktmbuf_mtod(m[i + k], const uint8_t *);
			lens[k] = rte_pktmbuf_data_len(m[i + k]);
			k++;
		}
		oms_core_process_burst(w->core, frames, lens, k, now);
		flush_tx(w);
		i += k;
	}
	rte_pktmbuf_free_bulk(m, n);
	w->stats.rx_frames += n;
}

static int worker_main(void *arg)
{
	struct oms_worker *w = arg;
	struct rte_mbuf *m[OMS_BURST];
	uint32_t idle = 0;

	while (!w->stop) {
		int busy = 0;
		uint16_t n = rte_eth_rx_burst(w->rx_port, w->rx_queue, m, OMS_BURST);
		if (n) {
			handle_rx(w, m, n);
			busy = 1;
			__atomic_add_fetch(&w->done, n, __ATOMIC_RELEASE);
		}
		void *cmd;
		if (w->commands && rte_ring_dequeue(w->commands, &cmd) == 0) {
			/* a timer tick at the given time: a call with no frames */
			oms_core_process_burst(w->core, NULL, NULL, 0, (uint64_t)(uintptr_t)cmd);
			flush_tx(w);
			w->stats.commands++;
			busy = 1;
			__atomic_add_fetch(&w->done, 1, __ATOMIC_RELEASE);
		}
		if (w->mode == OMS_MODE_LIVE) {
			uint64_t now = live_now(w);
			if (now >= oms_core_next_deadline(w->core)) {
				oms_core_process_burst(w->core, NULL, NULL, 0, now);
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
	return rte_eal_remote_launch(worker_main, w, lcore);
}
