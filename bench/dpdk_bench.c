/* DPDK benchmark: the order pipeline behind a DPDK port, against the I/O
 * alone and the core alone, on the same traffic in the same run.
 *
 * Traffic is the core benchmark's (bench/gen.c): unique valid orders with
 * their venue accepts, modifies, fills and cancels, as checksummed frames.
 * The port is DPDK's net_ring (rte_eth_from_rings): two rte_rings stand in
 * for the NIC's receive and transmit queues.  Two lcores:
 *
 *   main lcore   the "NIC": copies generator frames into mbufs ahead of
 *                time, offers them on the port's RX ring when they are due
 *                (TSC-paced at a given rate, or as fast as the ring takes
 *                them), and drains and frees the port's TX ring;
 *   worker lcore one of
 *     (a) null:  rx_burst -> tx_burst of the same mbufs (the I/O ceiling);
 *     (c) full:  rx_burst -> oms_core_process_burst -> copy of the core's
 *                frames into the received mbufs (fresh ones for any
 *                more) -> tx_burst: the appliance's own
 *                worker loop, cdefs/worker.c compiled into this program
 *                with timing hooks, in live mode (time from the TSC, timers
 *                checked every poll, TX retried);
 *     (b) core:  the core alone on the same frames, no DPDK I/O: frames
 *                copied (untimed) into a small recycled buffer ring, as in
 *                bench/core_bench.c, and only the core's calls timed.
 *   and with a third lcore:
 *     (d) sharded: the appliance's sharded mode itself - the I/O lcore of
 *                cdefs/io_lcore.c polls the port and feeds one worker
 *                (cdefs/worker.c) through SPSC rings, which hands its
 *                output back the same way; throughput only, from the first
 *                offer to the last frame handled.  With fewer CPUs than
 *                lcores, the I/O lcore and the worker time-share one.
 *   and with five lcores:
 *     (e) typed: the appliance's typed mode - the I/O lcore sorts frames
 *                into lanes by type, the modification and cancellation
 *                workers (cdefs/checker_lcore.c) check theirs, the
 *                placement worker takes them back in arrival order and its
 *                core runs Cancels first; throughput as (d).
 *
 * Throughput is measured at the maximum offered rate (the main lcore keeps
 * the RX ring full and never drops): frames and NewOrders carried per
 * second of the worker's span, first RX burst to last TX burst.  Latency is
 * measured at paced rates: per frame, TSC at the return of the RX burst
 * that brought it to the return of the last TX burst sending what its
 * burst caused (the worker handles a burst as one call, so its frames
 * share it), and per NewOrder also from its offer on the RX ring (which
 * adds the time queued there).  Every figure is one "name value" line.
 *
 * Both lcores busy-poll, so anything else the machine runs takes one of
 * their CPUs away: both loops note gaps between polls over GAP_NS, a run
 * with any is "disturbed" and tried again (--attempts), and the figures say
 * how much each kept run lost.  In a paced run main stands in for the
 * link: when it falls further behind its schedule than the RX ring holds
 * (offer_burst), it then offers a ring-full and more back to back, which
 * no pipeline behind that ring could take, so the try is void - kept only
 * when every try was, and then counted against the gate.  The
 * core-to-core latency between the two CPUs is measured before and after
 * each throughput repeat, and each try of the full pipeline: every frame
 * crosses between their caches, twice, which costs more when the host has
 * put the vCPUs on two L3s.  A try in which it moved them from one
 * placement to the other measured neither, and is tried again.
 *
 * usage: dpdk_bench EAL-ARGS -- [--orders N] [--capacity C] [--seconds S]
 *                                [--rates R1,R2,...] [--repeat K]
 *                                [--attempts A] [--ring-size Q]
 *   N: NewOrders in each throughput run; S: seconds of each paced run;
 *   R: offered NewOrders per second of the paced runs (frames are offered
 *   at R times the traffic's frames per order); K: throughput runs of each
 *   kind, medians reported; A: tries of each run, a try disturbed by
 *   other tasks (see judge) is repeated; Q: the RX ring's size. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "gen.h"
#include "oms_dpdk.h"

/* the port's RX ring by default: RX_DESC of cdefs/dpdk_io.c is 1024, 4096
 * descriptors are what NICs commonly offer at most.  The TX ring is twice
 * as deep, the mempool holds four times as many mbufs. */
#define RING_SIZE 4096
#define TX_RETRIES 64 /* as cdefs/worker.c */
#define MAX_RATES 16
#define MAX_REPEAT 9
/* Nothing either loop does takes this long (a burst of 32 through the core
 * is a few microseconds): a longer gap between two polls is the lcore's
 * CPU taken away - by the kernel, other tasks or the hypervisor. */
#define GAP_NS 100000

/* Gaps between consecutive polls of one loop. */
struct gaps {
	uint64_t last, max, n, total; /* TSC */
	uint64_t limit;
	uint64_t end, len; /* the latest gap over the limit: when it ended, how long */
};

static inline void gap_note(struct gaps *g, uint64_t now)
{
	if (g->last) {
		uint64_t d = now - g->last;
		if (d > g->max)
			g->max = d;
		if (d > g->limit) {
			g->n++;
			g->total += d;
			g->len = d;
			g->end = now;
		}
	}
	g->last = now;
}

enum { MODE_NULL, MODE_FULL, MODE_CORE, MODE_SHARDED, MODE_TYPED, PACED };
static const char *MODE_NAME[] = {"null", "full", "core", "sharded", "typed"};

/* A thread's share of its CPU: time on it, time runnable but waiting for
 * it (other tasks had it), switches against its will; and the wall clock. */
struct sched_snap {
	uint64_t run_ns, wait_ns, nivcsw, wall_ns;
};

/* What the main and worker lcores share for one run. */
struct bench {
	/* idle before each run: under SCHED_FIFO the kernel lets real-time
	 * tasks have 95 % of each second; a run shorter than that, after a
	 * rest, is not stopped half-way by the throttle */
	unsigned rest_ms;
	/* set up once */
	struct rte_mempool *pool;
	struct rte_ring *rx, *tx;
	uint16_t port;
	uint16_t strategy_tx_port, venue_tx_port; /* both `port` here */
	unsigned worker;
	unsigned io_lcore; /* RTE_MAX_LCORE: none, no sharded run */
	int io_shares_cpu; /* with the worker */
	struct rte_ring *in_ring, *out_ring; /* sharded: I/O lcore <-> worker */
	unsigned checker_lcore[2]; /* typed: modification, cancellation */
	struct rte_ring *lane[OMS_LANES], *checker_in[2];
	double hz;
	struct gen_frames f;
	uint32_t *seq_idx;   /* frame index of the k-th frame enqueued */
	uint64_t *offer_tsc; /* when the k-th frame was enqueued */
	uint32_t capacity;
	uint64_t tsc_per_us;
	/* one run */
	int mode;
	int record; /* per-frame latency from the offer arrays (paced runs) */
	uint32_t nframes;
	struct oms_core *core;
	volatile int stop;
	uint64_t tsc_base;
	double ns_per_tsc;
	/* the worker's own, written every burst: from a cache line of their
	 * own on, so that main reading the fields above (tsc_per_us while
	 * it waits for room) does not take the line from the worker each
	 * time - a miss per burst that is the benchmark's, not the
	 * pipeline's (perf put 40 % of the worker loop's own samples on it) */
	uint64_t done __rte_cache_aligned; /* frames fully handled */
	uint64_t rx_frames, tx_frames, tx_retries, tx_dropped, alloc_failed;
	uint64_t bursts, idle_polls, busy_cycles, core_cycles;
	uint64_t t_first, t_last;
	struct lat_hist burst_frame; /* RX-burst return to TX-burst return, per frame */
	struct lat_hist burst_order; /* the same, per NewOrder */
	struct lat_hist e2e_order;   /* offer on the RX ring to TX-burst return, per NewOrder */
	struct lat_hist wait_frame;  /* offer to RX-burst return, per frame */
	/* paced runs: each burst's end (frames received so far) and times,
	 * which main turns into per-frame latencies after the run; reading
	 * the offer arrays from the worker during the run would cost the
	 * worker a miss on lines main is writing, and the figures with it */
	struct burst_rec {
		uint64_t end, t_rx, t_tx;
	} *brec;
	uint64_t n_brec, brec_cap;
	struct sched_snap wsnap[2]; /* the worker thread, at start and end */
	struct gaps wgaps;          /* the worker loop's */
};

static struct bench B;
static struct oms_io IO;     /* (d)'s I/O lcore */
static uint64_t sharded_link_tx; /* frames (d)'s I/O lcore sent of its own */
static struct oms_worker SW; /* (d)'s worker, (e)'s placement worker */
static struct oms_typed TM;  /* (e)'s reorder window */
static struct oms_checker TK[2]; /* (e)'s modification, cancellation workers */

/* (e): the I/O lcore's lanes, two checking workers and the placement
 * worker around the core, as dataplane/typed_lanes.py wires them. */
static void launch_typed(struct bench *b)
{
	memset(&TM, 0, sizeof(TM));
	memset(TK, 0, sizeof(TK));
	SW.typed = &TM;
	TM.batch = 4 * GEN_BURST / 4; /* gen_make_core's transmit area, as a burst */
	SW.in_ring = NULL;
	IO.typed = 1;
	IO.merge = &TM;
	for (int l = 0; l < OMS_LANES; l++)
		TM.lane[l] = b->lane[l];
	for (int k = 0; k < 2; k++) {
		TK[k].in_ring = b->checker_in[k];
		TK[k].out_ring = b->lane[OMS_LANE_MODIFY + k];
		TK[k].ip = GEN_APP_IP;
		TK[k].strategy_udp = GEN_SP_PORT;
		TK[k].n_sessions = GEN_SESSIONS;
		for (uint32_t s = 0; s < GEN_SESSIONS; s++)
			TK[k].sessions[s] = (struct oms_checker_session){
				.id = s + 1, .ip = GEN_SESS_IP(s), .port = GEN_SESS_PORT};
		TK[k].idle_sleep_us = SW.idle_sleep_us;
	}
	IO.lane[OMS_LANE_NORMAL] = b->lane[OMS_LANE_NORMAL];
	IO.lane[OMS_LANE_HIGH] = b->lane[OMS_LANE_HIGH];
	IO.lane[OMS_LANE_MODIFY] = b->checker_in[0];
	IO.lane[OMS_LANE_CANCEL] = b->checker_in[1];
	oms_core_set_typed(SW.core, 1);
	for (int k = 0; k < 2; k++)
		oms_checker_launch(&TK[k], b->checker_lcore[k]);
}

struct result {
	/* the worker's counters of this run */
	uint64_t rx_frames, tx_frames, tx_retries, tx_dropped, alloc_failed, bursts;
	/* time the worker and main threads spent runnable but not running
	 * (other tasks had their CPU), the worker's involuntary switches, the
	 * share of the run they were on their CPUs, and the hypervisor's steal
	 * time over all CPUs: 0, 0, 100 % and 0 on CPUs of their own */
	uint64_t preempted_ns, preemptions, main_preempted_ns;
	double cpu_pct, main_cpu_pct, steal_ms;
	/* paced runs: core-to-core latency just before and just after, as
	 * the host may move the vCPUs (c2c 40-230 ns here) in the middle */
	double c2c_before_ns, c2c_after_ns;
	/* the loops' own view: longest gap between two polls, and the gaps
	 * over GAP_NS (the lcore was interrupted) with their total */
	struct gaps wgaps, mgaps;
	int disturbed; /* either lcore interrupted (main: not in core runs) */
	/* paced: main, the stand-in for the link, fell further behind its
	 * schedule than the RX ring holds, and then offered what fell due
	 * back to back - a burst no ring of that size takes, whatever runs
	 * behind it.  Such a try is void: it measures main's CPU. */
	int offer_burst;
	/* full throughput and paced: the core-to-core latency before and
	 * after were on either side of SAME_L3_C2C_NS - the host moved the
	 * vCPUs from one L3 to two, or back, during the try, which then
	 * measured neither placement */
	int moved;
	int attempts;                       /* tries of this run, this one the kept */
	int void_tries;                     /* tries with an offer burst */
	int moved_tries;                    /* tries the vCPUs moved in */
	uint64_t discarded_loss;            /* frames lost in disturbed tries not kept */
	struct lat_hist burst_frame, burst_order, e2e_order, wait_frame;
	uint64_t offered, enq, missed, stalls, drained, main_alloc_waits;
	/* paced: when the first frame was lost (0: none), and the latest
	 * interruption of each loop before it, to tell a loss that followed
	 * one (the offering lcore's own makes it offer what fell due at once)
	 * from a worker that did not keep up */
	uint64_t t0, first_loss, wgap_end, wgap_len, mgap_end, mgap_len; /* TSC */
	uint64_t ipackets, opackets, imissed, oerrors;
	uint64_t orders, frames_out, system_rejects, drops, accepted, fills;
	uint64_t loss;
	double offered_fps, offered_ops, lag_max_ns;
	double fps, ops, ns_per_frame, busy_pct;
};

static inline void hist_add(struct lat_hist *h, uint64_t v, uint64_t n)
{
	h->count += n;
	h->sum += v * n;
	if (v > h->max)
		h->max = v;
	h->bucket[lat_bucket_of(v)] += n;
}

static inline uint64_t now_ns(const struct bench *b, uint64_t tsc)
{
	return (uint64_t)((double)(tsc - b->tsc_base) * b->ns_per_tsc);
}

/* ---- the worker lcore ------------------------------------------------- */

/* How long this thread has run and waited on the run queue, and how often
 * it was switched out against its will: what it lost to other work. */
static void snap(struct sched_snap *s)
{
	unsigned long long run = 0, wait = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	struct rusage ru;
	struct timespec ts;

	if (f) {
		if (fscanf(f, "%llu %llu", &run, &wait) != 2)
			run = wait = 0;
		fclose(f);
	}
	/* schedstat's run time lags up to a tick behind for a running thread;
	 * the thread's CPU clock does not */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	s->run_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	(void)run;
	s->wait_ns = wait;
	getrusage(RUSAGE_THREAD, &ru);
	s->nivcsw = (uint64_t)ru.ru_nivcsw;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->wall_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sched_snapshot(struct bench *b, int at)
{
	snap(&b->wsnap[at]);
}

/* The hypervisor's steal time over all CPUs, in ms. */
static double steal_ms(void)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8)
		v[7] = 0;
	fclose(f);
	return (double)v[7] * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void null_send(struct bench *b, uint16_t port, struct rte_mbuf **m, uint32_t k)
{
	uint32_t sent = 0;

	for (int t = 0; t < TX_RETRIES && sent < k; t++) {
		sent += rte_eth_tx_burst(port, 0, m + sent, (uint16_t)(k - sent));
		if (sent < k)
			b->tx_retries++;
	}
	if (sent < k) {
		b->tx_dropped += k - sent;
		rte_pktmbuf_free_bulk(m + sent, k - sent);
	}
	b->tx_frames += sent;
}

/* After a burst: its latency, per frame and (paced runs) per NewOrder. */
static inline void record(struct bench *b, uint64_t t_rx, uint64_t t_tx, uint16_t n)
{
	hist_add(&b->burst_frame, t_tx - t_rx, n);
	b->busy_cycles += t_tx - t_rx;
	if (b->record && b->n_brec < b->brec_cap)
		b->brec[b->n_brec++] = (struct burst_rec){b->rx_frames, t_rx, t_tx};
}

/* After a paced run, on main: the per-frame and per-NewOrder latencies of
 * the bursts the worker noted.  The ring keeps the order frames were
 * enqueued in: the k-th frame received is the k-th enqueued. */
static void burst_latencies(struct bench *b)
{
	uint64_t k = 0;

	for (uint64_t i = 0; i < b->n_brec; i++) {
		const struct burst_rec *br = &b->brec[i];
		for (; k < br->end; k++) {
			uint64_t offer = b->offer_tsc[k];
			lat_record(&b->wait_frame, br->t_rx > offer ? br->t_rx - offer : 0);
			if (b->f.is_order[b->seq_idx[k]]) {
				lat_record(&b->burst_order, br->t_tx - br->t_rx);
				lat_record(&b->e2e_order, br->t_tx > offer ? br->t_tx - offer : 0);
			}
		}
	}
}

static int worker_null(void *arg)
{
	struct bench *b = arg;
	struct rte_mbuf *m[OMS_BURST];

	sched_snapshot(b, 0);
	while (!b->stop) {
		gap_note(&b->wgaps, rte_rdtsc());
		uint16_t n = rte_eth_rx_burst(b->port, 0, m, OMS_BURST);
		if (!n) {
			b->idle_polls++;
			rte_pause();
			continue;
		}
		uint64_t t_rx = rte_rdtsc();
		if (!b->t_first)
			b->t_first = t_rx;
		b->rx_frames += n;
		b->bursts++;
		null_send(b, b->port, m, n);
		uint64_t t_tx = rte_rdtsc();
		record(b, t_rx, t_tx, n);
		b->t_last = t_tx;
		__atomic_store_n(&b->done, b->rx_frames, __ATOMIC_RELEASE);
	}
	sched_snapshot(b, 1);
	return 0;
}

/* (c): the appliance's own worker loop (cdefs/worker.c, compiled into this
 * program below) on the port, in live mode; these hooks time each burst it
 * handles, from the return of the RX burst to the return of its TX bursts,
 * and note the gaps between its polls. */
static struct oms_worker FW;

static void full_after_rx(struct oms_worker *w, uint64_t t_rx, uint16_t n)
{
	struct bench *b = &B;
	uint64_t t_tx = rte_rdtsc();

	if (w != &FW)
		return;
	if (!b->t_first)
		b->t_first = t_rx;
	b->rx_frames += n;
	b->bursts++;
	record(b, t_rx, t_tx, n);
	b->t_last = t_tx;
	__atomic_store_n(&b->done, b->rx_frames, __ATOMIC_RELEASE);
}

#define OMS_WORKER_HOOKS 1
#define OMS_WORKER_START(w) do { if ((w) == &FW) sched_snapshot(&B, 0); } while (0)
#define OMS_WORKER_POLL(w) do { if ((w) == &FW) gap_note(&B.wgaps, rte_rdtsc()); } while (0)
#define OMS_WORKER_RX_TSC() rte_rdtsc()
#define OMS_WORKER_RX_DONE(w, t_rx, n) full_after_rx(w, t_rx, n)
#define OMS_WORKER_STOP(w) do { if ((w) == &FW) sched_snapshot(&B, 1); } while (0)
#include "worker.c"

/* (b): bench/core_bench.c's loop on this lcore.  A NIC's receive ring:
 * DMA writes each frame into one of a few thousand recycled buffers, which
 * stay in cache; the copy stands in for the DMA and is not timed. */
#define CORE_RX_RING 4096
static uint8_t core_rx_ring[CORE_RX_RING][GEN_FRAME_MAX] __attribute__((aligned(64)));

static int worker_core(void *arg)
{
	struct bench *b = arg;
	const uint8_t *rx[OMS_BURST];
	uint32_t slot = 0;

	sched_snapshot(b, 0);
	for (uint32_t i = 0; i < b->nframes; i += OMS_BURST) {
		uint32_t n = b->nframes - i < OMS_BURST ? b->nframes - i : OMS_BURST;
		for (uint32_t k = 0; k < n; k++) {
			uint8_t *s = core_rx_ring[slot++ % CORE_RX_RING];
			memcpy(s, gen_frame(&b->f, i + k), b->f.len[i + k]);
			rx[k] = s;
		}
		uint64_t t0 = rte_rdtsc();
		gap_note(&b->wgaps, t0);
		oms_core_process_burst(b->core, rx, b->f.len + i, n, now_ns(b, t0));
		oms_core_tx_clear(b->core);
		uint64_t dt = rte_rdtsc() - t0;
		hist_add(&b->burst_frame, dt, n);
		b->core_cycles += dt;
		b->rx_frames += n;
	}
	__atomic_store_n(&b->done, b->rx_frames, __ATOMIC_RELEASE);
	sched_snapshot(b, 1);
	return 0;
}

/* Core-to-core latency: a cache line bounced between the worker and main
 * lcores, half a round trip.  Frames cross between the two CPUs' caches,
 * so the pipeline's cost depends on where the two CPUs are (same L3 or
 * not; on a VM, where the host puts the vCPUs, which may change). */
static volatile uint64_t pingpong __attribute__((aligned(64)));
#define PINGS 20000
/* Under this, the two CPUs share an L3: 40-70 ns on this VM's host, against
 * 170-215 ns across two L3s */
#define SAME_L3_C2C_NS 120.0

static int worker_pong(void *arg)
{
	(void)arg;
	for (uint64_t i = 1; i <= PINGS; i++) {
		while (pingpong != 2 * i - 1)
			;
		pingpong = 2 * i;
	}
	return 0;
}

static double c2c_ns(struct bench *b)
{
	pingpong = 0;
	rte_eal_remote_launch(worker_pong, NULL, b->worker);
	uint64_t t0 = rte_rdtsc();
	for (uint64_t i = 1; i <= PINGS; i++) {
		pingpong = 2 * i - 1;
		while (pingpong != 2 * i)
			;
	}
	uint64_t t1 = rte_rdtsc();
	rte_eal_wait_lcore(b->worker);
	return (double)(t1 - t0) * 1e9 / b->hz / (2.0 * PINGS);
}

/* ---- the main lcore ----------------------------------------------------- */

static uint64_t drain(struct bench *b)
{
	struct rte_mbuf *m[2 * OMS_BURST];
	unsigned n = rte_ring_dequeue_burst(b->tx, (void **)m, 2 * OMS_BURST, NULL);

	if (n)
		rte_pktmbuf_free_bulk(m, n);
	return n;
}

static uint32_t frames_for_orders(const struct gen_frames *f, uint64_t orders)
{
	uint64_t seen = 0;

	for (uint32_t i = 0; i < f->n; i++)
		if (f->is_order[i] && ++seen > orders)
			return i;
	return f->n;
}

static uint64_t orders_in(const struct gen_frames *f, uint32_t nframes)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < nframes; i++)
		n += f->is_order[i];
	return n;
}

static void core_figures(struct bench *b, struct result *r)
{
	const struct oms_stats *st = oms_core_stats(b->core);

	for (int i = 0; i < OMS_REJ_SYSTEM_SLOTS; i++)
		r->system_rejects += st->reject_system[i];
	for (int i = 1; i < OMS_DROP_MAX; i++)
		r->drops += st->drop[i];
	r->frames_out = st->event[OMS_EV_FRAMES_OUT];
	r->accepted = st->sp_out[SP_ACCEPTED];
	r->fills = st->sp_out[SP_FILL];
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static void worker_figures(const struct bench *b, struct result *r)
{
	r->rx_frames = b->rx_frames;
	r->tx_frames = b->tx_frames;
	r->tx_retries = b->tx_retries;
	r->tx_dropped = b->tx_dropped;
	r->alloc_failed = b->alloc_failed;
	r->bursts = b->bursts;
	const struct sched_snap *a = &b->wsnap[0], *z = &b->wsnap[1];
	r->preempted_ns = z->wait_ns - a->wait_ns;
	r->preemptions = z->nivcsw - a->nivcsw;
	r->cpu_pct = z->wall_ns > a->wall_ns
			     ? 100.0 * (double)(z->run_ns - a->run_ns) / (double)(z->wall_ns - a->wall_ns)
			     : 100.0;
	r->wgaps = b->wgaps;
}

/* A run in which an lcore was interrupted (a gap over GAP_NS between two
 * polls) measured the machine's neighbours as much as the pipeline.  The
 * main lcore's gaps do not matter while it only waits for the core alone. */
static void judge(struct result *r, const struct sched_snap *m0, const struct sched_snap *m1,
		  double steal0, double steal1, int main_counts)
{
	double wall = (double)(m1->wall_ns - m0->wall_ns);

	r->main_preempted_ns = m1->wait_ns - m0->wait_ns;
	r->main_cpu_pct = wall > 0 ? 100.0 * (double)(m1->run_ns - m0->run_ns) / wall : 100.0;
	r->steal_ms = steal1 - steal0;
	r->disturbed = r->wgaps.n > 0 || (main_counts && r->mgaps.n > 0);
}

/* One run of `mode` over the first `nframes` frames, offered at
 * `rate_fps` frames per second (0: as fast as the RX ring takes them). */
static void run(struct bench *b, int mode, uint32_t nframes, double rate_fps, int record,
		struct result *r)
{
	memset(r, 0, sizeof(*r));
	if (b->rest_ms)
		usleep(b->rest_ms * 1000u);
	b->mode = mode;
	b->record = record;
	b->nframes = nframes;
	b->stop = 0;
	b->done = 0;
	b->rx_frames = b->tx_frames = b->tx_retries = b->tx_dropped = b->alloc_failed = 0;
	b->bursts = b->idle_polls = b->busy_cycles = b->core_cycles = 0;
	b->t_first = b->t_last = 0;
	memset(&b->burst_frame, 0, sizeof(b->burst_frame));
	memset(&b->burst_order, 0, sizeof(b->burst_order));
	memset(&b->e2e_order, 0, sizeof(b->e2e_order));
	memset(&b->wait_frame, 0, sizeof(b->wait_frame));
	b->n_brec = 0;
	memset(&b->wgaps, 0, sizeof(b->wgaps));
	b->wgaps.limit = (uint64_t)(GAP_NS * b->hz / 1e9);
	r->mgaps.limit = b->wgaps.limit;
	b->core = mode == MODE_NULL ? NULL : gen_make_core(b->capacity);
	b->tsc_base = rte_rdtsc();
	r->orders = orders_in(&b->f, nframes);
	struct sched_snap m0, m1;
	double steal0 = steal_ms();
	snap(&m0);

	if (mode == MODE_CORE) {
		rte_eal_remote_launch(worker_core, b, b->worker);
		rte_eal_wait_lcore(b->worker);
		snap(&m1);
		worker_figures(b, r);
		judge(r, &m0, &m1, steal0, steal_ms(), 0);
		double s = (double)b->core_cycles / b->hz;
		r->offered = r->enq = b->rx_frames;
		r->fps = (double)nframes / s;
		r->ops = (double)r->orders / s;
		r->ns_per_frame = s * 1e9 / nframes;
		core_figures(b, r);
		r->burst_frame = b->burst_frame;
		oms_core_destroy(b->core);
		b->core = NULL;
		return;
	}

	rte_eth_stats_reset(b->port);
	if (mode == MODE_SHARDED || mode == MODE_TYPED) {
		memset(&IO, 0, sizeof(IO));
		memset(&SW, 0, sizeof(SW));
		SW.core = b->core;
		SW.pool = b->pool;
		SW.in_ring = b->in_ring;
		SW.out_ring = b->out_ring;
		SW.strategy_tx_port = SW.venue_tx_port = b->port;
		SW.strategy_udp = GEN_SP_PORT;
		SW.mode = OMS_MODE_LIVE;
		IO.n_rx = 1;
		IO.rx_port[0] = b->port;
		IO.n_workers = 1;
		IO.in_ring[0] = b->in_ring;
		IO.out_ring[0] = b->out_ring;
		IO.strategy_udp = GEN_SP_PORT;
		memcpy(IO.mac, GEN_APP_MAC, 6);
		IO.ip = GEN_APP_IP;
		IO.pool = b->pool;
		/* sharing a CPU, the two must give it to each other when idle */
		IO.idle_sleep_us = SW.idle_sleep_us = b->io_shares_cpu ? 5 : 0;
		if (mode == MODE_TYPED)
			launch_typed(b);
		oms_worker_launch(&SW, b->worker);
		oms_io_launch(&IO, b->io_lcore);
	} else if (mode == MODE_FULL) {
		memset(&FW, 0, sizeof(FW));
		FW.core = b->core;
		FW.pool = b->pool;
		FW.n_rx = 1;
		FW.rx_port[0] = b->port;
		FW.strategy_tx_port = FW.venue_tx_port = b->port;
		FW.strategy_udp = GEN_SP_PORT;
		FW.mode = OMS_MODE_LIVE;
		oms_worker_launch(&FW, b->worker);
	} else {
		rte_eal_remote_launch(worker_null, b, b->worker);
	}

	const struct gen_frames *f = &b->f;
	struct rte_mbuf *pm[OMS_BURST];
	uint32_t np = 0, pos = 0, k = 0;
	double frames_per_tsc = rate_fps / b->hz;
	/* the link comes up once the worker polls: its lcore, asleep since the
	 * rest, can take over a millisecond to wake on a busy host, and a paced
	 * run started before then loses a ring-full however fast the pipeline
	 * (null and full note their polls; the sharded and typed workers are
	 * not paced and are given a millisecond) */
	uint64_t t0 = rte_rdtsc() + (uint64_t)(b->hz / 1000);
	if (mode == MODE_FULL || mode == MODE_NULL) {
		uint64_t give_up = rte_rdtsc() + (uint64_t)b->hz;
		while (!__atomic_load_n(&b->wgaps.last, __ATOMIC_ACQUIRE) && rte_rdtsc() < give_up)
			rte_pause();
		t0 = rte_rdtsc();
	}
	uint64_t t_end = t0, lag_max = 0;

	while (k < nframes) {
		gap_note(&r->mgaps, rte_rdtsc());
		r->drained += drain(b);
		if (pos == np) {
			/* the next frames into mbufs, ahead of their time */
			uint32_t cnt = nframes - k < OMS_BURST ? nframes - k : OMS_BURST;
			if (rte_pktmbuf_alloc_bulk(b->pool, pm, cnt) != 0) {
				r->main_alloc_waits++;
				continue;
			}
			for (uint32_t j = 0; j < cnt; j++) {
				uint16_t len = f->len[k + j];
				memcpy(rte_pktmbuf_append(pm[j], len), gen_frame(f, k + j), len);
			}
			np = cnt;
			pos = 0;
		}
		uint64_t now = rte_rdtsc();
		if (now < t0)
			continue;
		uint32_t ready = np - pos;
		if (rate_fps > 0) {
			/* frame i is due at t0 + i / frames_per_tsc */
			uint64_t due = (uint64_t)((double)(now - t0) * frames_per_tsc) + 1;
			if (due <= k)
				continue;
			if (due - k < ready)
				ready = (uint32_t)(due - k);
			uint64_t due_at = t0 + (uint64_t)((double)k / frames_per_tsc);
			if (now - due_at > lag_max)
				lag_max = now - due_at;
		}
		for (uint32_t j = 0; j < ready; j++) {
			b->seq_idx[r->enq + j] = k + j;
			b->offer_tsc[r->enq + j] = now;
		}
		uint32_t e = rte_ring_enqueue_burst(b->rx, (void **)(pm + pos), ready, NULL);
		r->enq += e;
		if (e < ready) {
			if (rate_fps > 0) {
				/* a NIC with a full ring drops what arrives */
				rte_pktmbuf_free_bulk(pm + pos + e, ready - e);
				if (!r->missed) {
					r->t0 = t0;
					r->first_loss = now;
					r->wgap_end = b->wgaps.end;
					r->wgap_len = b->wgaps.len;
					r->mgap_end = r->mgaps.end;
					r->mgap_len = r->mgaps.len;
				}
				r->missed += ready - e;
				e = ready;
			} else {
				/* the worker is behind: leave the ring's cache lines
				 * to it for a microsecond rather than spin on them
				 * (not with pause: in a VM, pause loops may exit to
				 * the hypervisor) */
				r->stalls++;
				for (uint64_t until = rte_rdtsc() + b->tsc_per_us; rte_rdtsc() < until;)
					;
			}
		}
		pos += e;
		k += e;
		t_end = now;
	}
	r->offered = k;
	/* until the worker has handled all, then it stops and we drain */
	uint64_t deadline = rte_rdtsc() + (uint64_t)(b->hz * 30);
	int via_io = mode == MODE_SHARDED || mode == MODE_TYPED;
	volatile uint64_t *done = via_io ? &SW.done : &b->done;
	while (__atomic_load_n(done, __ATOMIC_ACQUIRE) < r->enq && rte_rdtsc() < deadline)
		r->drained += drain(b);
	if (via_io) {
		b->t_first = t0;
		b->t_last = rte_rdtsc();
		IO.rx_off = 1;
		for (int k = 0; k < 2 && mode == MODE_TYPED; k++) {
			TK[k].stop = 1; /* all they were given has been handled */
			rte_eal_wait_lcore(b->checker_lcore[k]);
		}
		SW.stop = 1;
		rte_eal_wait_lcore(b->worker);
		IO.stop = 1; /* after a last drain of the worker's output */
		rte_eal_wait_lcore(b->io_lcore);
		/* the port's view: what the I/O lcore took and sent, less its
		 * own link-level frames (a gratuitous ARP at start) */
		uint64_t link_tx = 1 + IO.link.arp_replies + IO.link.icmp_echo_replies;
		b->rx_frames = IO.stats.rx_frames;
		b->tx_frames = IO.stats.tx_frames - link_tx;
		b->tx_dropped = IO.stats.tx_dropped + SW.stats.tx_dropped + IO.stats.worker_ring_full;
		b->tx_retries = IO.stats.tx_retries + SW.stats.tx_retries;
		b->alloc_failed = SW.stats.mbuf_alloc_failed;
		sharded_link_tx = link_tx;
		snap(&m1);
		memset(b->wsnap, 0, sizeof(b->wsnap)); /* its threads keep none */
		worker_figures(b, r);
	} else {
		b->stop = 1;
		FW.stop = 1;
		rte_eal_wait_lcore(b->worker);
		if (mode == MODE_FULL) {
			b->tx_frames = FW.stats.tx_frames;
			b->tx_retries = FW.stats.tx_retries;
			b->tx_dropped = FW.stats.tx_dropped;
			b->alloc_failed = FW.stats.mbuf_alloc_failed;
			b->idle_polls = FW.stats.idle_polls;
		}
		snap(&m1);
		worker_figures(b, r);
		judge(r, &m0, &m1, steal0, steal_ms(), 1);
	}
	for (uint64_t n; (n = drain(b)) != 0;)
		r->drained += n;
	if (via_io)
		r->drained -= sharded_link_tx;
	burst_latencies(b);
	r->burst_frame = b->burst_frame;
	r->burst_order = b->burst_order;
	r->e2e_order = b->e2e_order;
	r->wait_frame = b->wait_frame;

	struct rte_eth_stats st;
	if (rte_eth_stats_get(b->port, &st) == 0) {
		r->ipackets = st.ipackets;
		r->opackets = st.opackets;
		if (via_io) /* less the I/O lcore's own frames */
			r->opackets -= sharded_link_tx;
		r->imissed = st.imissed;
		r->oerrors = st.oerrors;
	}
	double offer_s = (double)(t_end - t0) / b->hz;
	r->offered_fps = offer_s > 0 ? (double)r->offered / offer_s : 0;
	r->offered_ops = offer_s > 0 ? (double)r->orders / offer_s : 0;
	r->lag_max_ns = (double)lag_max * 1e9 / b->hz;
	r->offer_burst = rate_fps > 0 &&
			 (double)lag_max / b->hz * rate_fps > (double)rte_ring_get_capacity(b->rx);
	double span = (double)(b->t_last - b->t_first) / b->hz;
	r->fps = span > 0 ? (double)b->rx_frames / span : 0;
	r->ops = span > 0 ? (double)r->orders / span : 0;
	r->ns_per_frame = span * 1e9 / (double)(b->rx_frames ? b->rx_frames : 1);
	r->busy_pct = b->t_last > b->t_first
			      ? 100.0 * (double)b->busy_cycles / (double)(b->t_last - b->t_first)
			      : 0;
	/* every frame offered is received, every frame to send is sent and
	 * drained, and the port's counters agree */
	r->loss = r->missed + (r->offered - b->rx_frames) + r->imissed + b->tx_dropped +
		  r->oerrors + absdiff(b->tx_frames, r->drained) + absdiff(r->ipackets, b->rx_frames) +
		  absdiff(r->opackets, b->tx_frames);
	if (mode == MODE_NULL) {
		r->loss += absdiff(b->tx_frames + b->tx_dropped, b->rx_frames);
	} else {
		core_figures(b, r);
		r->loss += absdiff(r->frames_out, b->tx_frames + b->tx_dropped);
		oms_core_destroy(b->core);
		b->core = NULL;
	}
	if (oms_pool_in_use(b->pool) != 0)
		fprintf(stderr, "warning: %u mbufs still in use after the run\n",
			oms_pool_in_use(b->pool));
}

/* How far a try is from a clean measurement (0): worst a void one, then
 * one the lcores were interrupted in (of two such, the one that lost less
 * to other tasks is kept), then one the vCPUs moved in, which measured two
 * placements. */
static int try_rank(const struct result *r)
{
	return 4 * r->offer_burst + 2 * r->disturbed + r->moved;
}

/* Up to `attempts` tries of a run, until a clean one; the best by try_rank
 * is kept.  What the others lost is reported beside it. */
static void run_tries(struct bench *b, int attempts, int mode, uint32_t nframes, double rate_fps,
		      int record, struct result *keep)
{
	static struct result t;
	uint64_t discarded_loss = 0;
	int a, void_tries = 0, moved_tries = 0;
	/* the pipeline's figures depend on where the host has put the CPUs */
	int placed = record || mode == MODE_FULL;

	for (a = 1; a <= attempts; a++) {
		double before = placed ? c2c_ns(b) : 0;
		run(b, mode, nframes, rate_fps, record, &t);
		t.c2c_before_ns = before;
		t.c2c_after_ns = placed ? c2c_ns(b) : 0;
		t.moved = placed && (before < SAME_L3_C2C_NS) != (t.c2c_after_ns < SAME_L3_C2C_NS);
		uint64_t lost = t.wgaps.total + (mode == MODE_CORE ? 0 : t.mgaps.total);
		uint64_t kept = keep->wgaps.total + (mode == MODE_CORE ? 0 : keep->mgaps.total);
		void_tries += t.offer_burst;
		moved_tries += t.moved;
		int better = a == 1 || try_rank(&t) < try_rank(keep) ||
			     (try_rank(&t) == try_rank(keep) && t.disturbed && lost < kept);
		if (better) {
			if (a > 1)
				discarded_loss += keep->loss;
			*keep = t;
		} else {
			discarded_loss += t.loss;
		}
		if (!t.disturbed && !t.offer_burst && !t.moved)
			break;
	}
	keep->attempts = a > attempts ? attempts : a;
	keep->void_tries = void_tries;
	keep->moved_tries = moved_tries;
	keep->discarded_loss = discarded_loss;
}

/* ---- figures ---------------------------------------------------------------- */

static void print_hist(const char *prefix, const struct lat_hist *h, double hz)
{
	static const double P[] = {50, 90, 99, 99.9};
	static const char *PN[] = {"p50", "p90", "p99", "p99_9"};

	for (int i = 0; i < 4; i++)
		printf("%s_%s_ns %.1f\n", prefix, PN[i], (double)gen_percentile(h, P[i]) * 1e9 / hz);
	printf("%s_max_ns %.1f\n", prefix, (double)h->max * 1e9 / hz);
	printf("%s_mean_ns %.1f\n", prefix,
	       h->count ? (double)h->sum / (double)h->count * 1e9 / hz : 0.0);
	printf("%s_count %lu\n", prefix, (unsigned long)h->count);
}

static void print_run(const char *p, const struct result *r, int mode)
{
	printf("%s_frames %lu\n", p, (unsigned long)r->offered);
	printf("%s_orders %lu\n", p, (unsigned long)r->orders);
	printf("%s_preempted_ns %lu\n", p, (unsigned long)r->preempted_ns);
	printf("%s_preemptions %lu\n", p, (unsigned long)r->preemptions);
	printf("%s_worker_cpu_pct %.1f\n", p, r->cpu_pct);
	printf("%s_steal_ms %.0f\n", p, r->steal_ms);
	printf("%s_worker_gap_max_ns %.0f\n", p, (double)r->wgaps.max * 1e9 / B.hz);
	printf("%s_worker_interruptions %lu\n", p, (unsigned long)r->wgaps.n);
	printf("%s_worker_interrupted_ns %.0f\n", p, (double)r->wgaps.total * 1e9 / B.hz);
	printf("%s_disturbed %d\n", p, r->disturbed);
	printf("%s_attempts %d\n", p, r->attempts);
	if (r->c2c_before_ns > 0) {
		printf("%s_c2c_before_ns %.1f\n", p, r->c2c_before_ns);
		printf("%s_c2c_after_ns %.1f\n", p, r->c2c_after_ns);
	}
	printf("%s_discarded_loss %lu\n", p, (unsigned long)r->discarded_loss);
	if (mode == MODE_CORE)
		goto core;
	printf("%s_offered_frames_per_s %.0f\n", p, r->offered_fps);
	printf("%s_offered_orders_per_s %.0f\n", p, r->offered_ops);
	printf("%s_offer_lag_max_ns %.0f\n", p, r->lag_max_ns);
	printf("%s_offer_burst %d\n", p, r->offer_burst);
	printf("%s_void_tries %d\n", p, r->void_tries);
	printf("%s_moved_tries %d\n", p, r->moved_tries);
	printf("%s_moved %d\n", p, r->moved);
	printf("%s_main_preempted_ns %lu\n", p, (unsigned long)r->main_preempted_ns);
	printf("%s_main_cpu_pct %.1f\n", p, r->main_cpu_pct);
	printf("%s_main_gap_max_ns %.0f\n", p, (double)r->mgaps.max * 1e9 / B.hz);
	printf("%s_main_interruptions %lu\n", p, (unsigned long)r->mgaps.n);
	printf("%s_main_interrupted_ns %.0f\n", p, (double)r->mgaps.total * 1e9 / B.hz);
	printf("%s_offer_stalls %lu\n", p, (unsigned long)r->stalls);
	printf("%s_rx_missed %lu\n", p, (unsigned long)r->missed);
	if (r->missed) {
		double ms = 1e3 / B.hz;
		/* times from the first offer; a gap's is when it ended */
		printf("%s_first_loss_ms %.3f\n", p, (double)(r->first_loss - r->t0) * ms);
		printf("%s_worker_gap_before_loss_ms %.3f\n", p,
		       r->wgap_len ? ((double)r->wgap_end - (double)r->t0) * ms : -1.0);
		printf("%s_worker_gap_before_loss_us %.0f\n", p, (double)r->wgap_len * ms * 1e3);
		printf("%s_main_gap_before_loss_ms %.3f\n", p,
		       r->mgap_len ? ((double)r->mgap_end - (double)r->t0) * ms : -1.0);
		printf("%s_main_gap_before_loss_us %.0f\n", p, (double)r->mgap_len * ms * 1e3);
	}
	printf("%s_worker_rx %lu\n", p, (unsigned long)r->rx_frames);
	printf("%s_worker_tx %lu\n", p, (unsigned long)r->tx_frames);
	printf("%s_tx_dropped %lu\n", p, (unsigned long)r->tx_dropped);
	printf("%s_tx_retries %lu\n", p, (unsigned long)r->tx_retries);
	printf("%s_tx_alloc_failed %lu\n", p, (unsigned long)r->alloc_failed);
	printf("%s_drained %lu\n", p, (unsigned long)r->drained);
	printf("%s_port_ipackets %lu\n", p, (unsigned long)r->ipackets);
	printf("%s_port_opackets %lu\n", p, (unsigned long)r->opackets);
	printf("%s_port_imissed %lu\n", p, (unsigned long)r->imissed);
	printf("%s_port_oerrors %lu\n", p, (unsigned long)r->oerrors);
	printf("%s_loss %lu\n", p, (unsigned long)r->loss);
	printf("%s_worker_busy_pct %.1f\n", p, r->busy_pct);
	printf("%s_frames_per_burst %.1f\n", p,
	       r->bursts ? (double)r->rx_frames / (double)r->bursts : 0.0);
core:
	printf("%s_frames_per_s %.0f\n", p, r->fps);
	printf("%s_orders_per_s %.0f\n", p, r->ops);
	printf("%s_ns_per_frame %.1f\n", p, r->ns_per_frame);
	if (mode != MODE_NULL) {
		printf("%s_frames_out %lu\n", p, (unsigned long)r->frames_out);
		printf("%s_accepted %lu\n", p, (unsigned long)r->accepted);
		printf("%s_fills %lu\n", p, (unsigned long)r->fills);
		printf("%s_system_rejects %lu\n", p, (unsigned long)r->system_rejects);
		printf("%s_drops %lu\n", p, (unsigned long)r->drops);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	cpu_set_t avail;
	CPU_ZERO(&avail);
	sched_getaffinity(0, sizeof(avail), &avail);
	int cpus = CPU_COUNT(&avail);

	int eal = oms_eal_init(argc, argv);
	if (eal < 0) {
		fprintf(stderr, "EAL did not start\n");
		return 2;
	}
	argc -= eal;
	argv += eal;

	uint64_t orders = 2000000;
	double seconds = 2.0;
	double rates[MAX_RATES] = {250000, 500000, 1000000};
	int n_rates = 3, repeat = 3, attempts = 3;
	uint32_t capacity = 65536;
	unsigned ring_size = RING_SIZE;
	/* runs to make: bit per MODE_*, and PACED for the paced latency runs
	 * (--modes full: one mode alone, e.g. under a profiler) */
	unsigned want = ~0u;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "%s wants a value\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--orders")) {
			orders = strtoull(v, NULL, 10);
		} else if (!strcmp(argv[i], "--capacity")) {
			capacity = (uint32_t)strtoul(v, NULL, 10);
		} else if (!strcmp(argv[i], "--seconds")) {
			seconds = strtod(v, NULL);
		} else if (!strcmp(argv[i], "--repeat")) {
			repeat = atoi(v);
			if (repeat < 1 || repeat > MAX_REPEAT)
				repeat = 1;
		} else if (!strcmp(argv[i], "--ring-size")) {
			ring_size = (unsigned)strtoul(v, NULL, 10);
			if (ring_size < 64 || (ring_size & (ring_size - 1))) {
				fprintf(stderr, "--ring-size: a power of 2, at least 64\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--rest-ms")) {
			B.rest_ms = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(argv[i], "--modes")) {
			want = 0;
			for (int m = 0; m < (int)(sizeof(MODE_NAME) / sizeof(MODE_NAME[0])); m++)
				if (strstr(v, MODE_NAME[m]))
					want |= 1u << m;
			if (strstr(v, "paced"))
				want |= 1u << PACED;
		} else if (!strcmp(argv[i], "--attempts")) {
			attempts = atoi(v) < 1 ? 1 : atoi(v);
		} else if (!strcmp(argv[i], "--rates")) {
			n_rates = 0;
			for (char *s = (char *)v; *s && n_rates < MAX_RATES;) {
				rates[n_rates++] = strtod(s, &s);
				if (*s == ',')
					s++;
				else if (*s)
					break;
			}
		} else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
		i++;
	}

	struct bench *b = &B;
	b->capacity = capacity;
	b->hz = gen_tsc_hz();
	b->ns_per_tsc = 1e9 / b->hz;
	b->tsc_per_us = (uint64_t)(b->hz / 1e6);
	b->worker = rte_get_next_lcore(-1, 1, 0);
	if (b->worker >= RTE_MAX_LCORE) {
		fprintf(stderr, "no worker lcore: give EAL two lcores (-l 0,1)\n");
		return 2;
	}
	b->io_lcore = rte_get_next_lcore(b->worker, 1, 0);
	b->checker_lcore[0] = b->checker_lcore[1] = RTE_MAX_LCORE;
	if (b->io_lcore < RTE_MAX_LCORE)
		b->checker_lcore[0] = rte_get_next_lcore(b->io_lcore, 1, 0);
	if (b->checker_lcore[0] < RTE_MAX_LCORE)
		b->checker_lcore[1] = rte_get_next_lcore(b->checker_lcore[0], 1, 0);
	/* do the two lcores have CPUs of their own? */
	rte_cpuset_t main_set = rte_lcore_cpuset(rte_get_main_lcore());
	rte_cpuset_t worker_set = rte_lcore_cpuset(b->worker);
	rte_cpuset_t both;
	CPU_AND(&both, &main_set, &worker_set);
	int layout_shared = cpus < 2 || CPU_COUNT(&both) > 0;
	int disturbed = 0;

	double max_rate = 0;
	for (int i = 0; i < n_rates; i++)
		if (rates[i] > max_rate)
			max_rate = rates[i];
	uint64_t gen_orders = orders;
	if ((uint64_t)(max_rate * seconds) > gen_orders)
		gen_orders = (uint64_t)(max_rate * seconds);
	uint32_t in_flight = capacity / 4 < 4096 ? capacity / 4 : 4096;
	gen_generate(&b->f, (uint32_t)gen_orders, in_flight);
	b->seq_idx = malloc((size_t)b->f.n * sizeof(*b->seq_idx));
	b->offer_tsc = malloc((size_t)b->f.n * sizeof(*b->offer_tsc));
	b->brec_cap = b->f.n; /* a burst holds a frame at least */
	b->brec = malloc((size_t)b->brec_cap * sizeof(*b->brec));

	b->pool = oms_pool_create("bench_pool", 4 * ring_size - 1, (int)rte_socket_id());
	b->rx = oms_ring_create("bench_rx", ring_size, (int)rte_socket_id(), 1);
	b->tx = oms_ring_create("bench_tx", 2 * ring_size, (int)rte_socket_id(), 1);
	if (!b->pool || !b->rx || !b->tx || !b->seq_idx || !b->offer_tsc || !b->brec) {
		fprintf(stderr, "cannot create the mempool or rings (memory?)\n");
		return 2;
	}
	int port = oms_port_from_rings("net_ring_bench", b->rx, b->tx, (int)rte_socket_id());
	char err[256];
	if (port < 0 || oms_port_start((uint16_t)port, b->pool, err, sizeof(err)) != 0) {
		fprintf(stderr, "ring port: %s\n", port < 0 ? "cannot create" : err);
		return 2;
	}
	b->port = b->strategy_tx_port = b->venue_tx_port = (uint16_t)port;
	b->in_ring = oms_ring_create("bench_in", ring_size, (int)rte_socket_id(), 1);
	b->out_ring = oms_ring_create("bench_out", 2 * ring_size, (int)rte_socket_id(), 1);
	if (!b->in_ring || !b->out_ring) {
		fprintf(stderr, "cannot create the sharded mode's rings\n");
		return 2;
	}
	static const char *LANE_RING[] = {"bench_normal", "bench_high", "bench_mod_out",
					  "bench_cxl_out", "bench_mod_in", "bench_cxl_in"};
	for (int l = 0; l < OMS_LANES + 2; l++) {
		struct rte_ring *q = oms_ring_create(LANE_RING[l], ring_size, (int)rte_socket_id(), 1);
		if (!q) {
			fprintf(stderr, "cannot create the typed mode's rings\n");
			return 2;
		}
		if (l < OMS_LANES)
			b->lane[l] = q;
		else
			b->checker_in[l - OMS_LANES] = q;
	}

	double fpo = (double)b->f.n / (double)b->f.orders;
	uint32_t tput_frames = frames_for_orders(&b->f, orders);
	printf("tsc_hz %.0f\n", b->hz);
	printf("cpus %d\n", cpus);
	/* what EAL's memory is: hugepages as deployed, or --no-huge */
	printf("eal_hugepages %d\n", rte_eal_has_hugepages());
	printf("main_lcore %u\n", rte_get_main_lcore());
	printf("worker_lcore %u\n", b->worker);
	printf("cpu_layout_shared %d\n", layout_shared);
	printf("rx_ring_size %u\n", ring_size);
	printf("burst %d\n", OMS_BURST);
	printf("table_capacity %u\n", capacity);
	printf("in_flight %u\n", in_flight);
	printf("frames_per_order %.3f\n", fpo);
	printf("repeat %d\n", repeat);
	printf("same_l3_c2c_ns %.0f\n", SAME_L3_C2C_NS);
	printf("max_attempts %d\n", attempts);

	/* throughput: (a), (b), (c) interleaved, `repeat` times; medians */
	static const int TMODES[] = {MODE_NULL, MODE_CORE, MODE_FULL};
	double ops[3][MAX_REPEAT];
	static struct result last[3];
	uint64_t bad = 0;
	for (int rep = 0; rep < repeat; rep++) {
		printf("rep%d_c2c_ns %.1f\n", rep, c2c_ns(b));
		for (int m = 0; m < 3; m++) {
			if (!(want & 1u << TMODES[m])) {
				ops[m][rep] = 0;
				continue;
			}
			run_tries(b, attempts, TMODES[m], tput_frames, 0, 0, &last[m]);
			ops[m][rep] = last[m].ops;
			printf("%s_rep%d_orders_per_s %.0f\n", MODE_NAME[TMODES[m]], rep, last[m].ops);
			printf("%s_rep%d_worker_busy_pct %.1f\n", MODE_NAME[TMODES[m]], rep,
			       last[m].busy_pct);
			printf("%s_rep%d_interrupted_ns %.0f\n", MODE_NAME[TMODES[m]], rep,
			       (double)(last[m].wgaps.total + last[m].mgaps.total) * 1e9 / b->hz);
			bad += last[m].loss + last[m].system_rejects + last[m].drops;
			disturbed += last[m].disturbed;
		}
		/* the host may have moved the CPUs during the repeat */
		printf("rep%d_c2c_after_ns %.1f\n", rep, c2c_ns(b));
		/* (c)/(b) of this repeat: the two ran back to back, with the
		 * same placement of the two CPUs (repN_c2c_ns, and after) */
		if (ops[1][rep] > 0)
			printf("rep%d_ratio_full_to_core %.3f\n", rep, ops[2][rep] / ops[1][rep]);
	}
	double med[3] = {0, 0, 0};
	for (int m = 0; m < 3; m++) {
		if (!(want & 1u << TMODES[m]))
			continue;
		print_run(MODE_NAME[TMODES[m]], &last[m], TMODES[m]);
		/* a burst's time, RX to TX (the core's call alone in (b)): its
		 * median, unlike orders/s, barely moves when other tasks take
		 * the CPUs for a while */
		char h[64];
		snprintf(h, sizeof(h), "%s_burst", MODE_NAME[TMODES[m]]);
		print_hist(h, &last[m].burst_frame, b->hz);
		qsort(ops[m], (size_t)repeat, sizeof(double), cmp_double);
		med[m] = ops[m][repeat / 2];
		printf("%s_orders_per_s_median %.0f\n", MODE_NAME[TMODES[m]], med[m]);
		printf("%s_orders_per_s_min %.0f\n", MODE_NAME[TMODES[m]], ops[m][0]);
		printf("%s_orders_per_s_max %.0f\n", MODE_NAME[TMODES[m]], ops[m][repeat - 1]);
		printf("%s_frames_per_s_median %.0f\n", MODE_NAME[TMODES[m]], med[m] * fpo);
	}
	/* (c)/(b) and (c)/(a) */
	if (med[1] > 0)
		printf("ratio_full_to_core %.3f\n", med[2] / med[1]);
	if (med[0] > 0)
		printf("ratio_full_to_null %.3f\n", med[2] / med[0]);

	/* (d): the sharded mode, when EAL gave a third lcore */
	if (b->io_lcore < RTE_MAX_LCORE && want & 1u << MODE_SHARDED) {
		rte_cpuset_t io_set = rte_lcore_cpuset(b->io_lcore);
		rte_cpuset_t shared;
		CPU_AND(&shared, &io_set, &worker_set);
		int io_shared = cpus < 3 || CPU_COUNT(&shared) > 0;
		b->io_shares_cpu = io_shared;
		double sops[MAX_REPEAT];
		static struct result sr;
		for (int rep = 0; rep < repeat; rep++) {
			run(b, MODE_SHARDED, tput_frames, 0, 0, &sr);
			sops[rep] = sr.ops;
			printf("sharded_rep%d_orders_per_s %.0f\n", rep, sr.ops);
			bad += sr.loss + sr.system_rejects + sr.drops;
		}
		print_run("sharded", &sr, MODE_SHARDED);
		qsort(sops, (size_t)repeat, sizeof(double), cmp_double);
		printf("sharded_orders_per_s_median %.0f\n", sops[repeat / 2]);
		printf("sharded_time_shared %d\n", io_shared);
		printf("ratio_sharded_to_full %.3f\n", sops[repeat / 2] / med[2]);
	}

	/* (e): the typed mode, when EAL gave five lcores; the I/O lcore and
	 * the placement worker are placed as (d)'s */
	if (b->checker_lcore[1] < RTE_MAX_LCORE && want & 1u << MODE_TYPED) {
		rte_cpuset_t io_set = rte_lcore_cpuset(b->io_lcore);
		rte_cpuset_t shared;
		CPU_AND(&shared, &io_set, &worker_set);
		int t_shared = cpus < 5 || CPU_COUNT(&shared) > 0;
		b->io_shares_cpu = t_shared;
		double tops[MAX_REPEAT];
		static struct result tr;
		for (int rep = 0; rep < repeat; rep++) {
			run(b, MODE_TYPED, tput_frames, 0, 0, &tr);
			tops[rep] = tr.ops;
			printf("typed_rep%d_orders_per_s %.0f\n", rep, tr.ops);
			bad += tr.loss + tr.system_rejects + tr.drops;
		}
		print_run("typed", &tr, MODE_TYPED);
		printf("typed_lane_modify %lu\n", (unsigned long)IO.lane_tx[OMS_LANE_MODIFY]);
		printf("typed_lane_cancel %lu\n", (unsigned long)IO.lane_tx[OMS_LANE_CANCEL]);
		printf("typed_lane_normal %lu\n", (unsigned long)IO.lane_tx[OMS_LANE_NORMAL]);
		printf("typed_checked %lu\n",
		       (unsigned long)(TK[0].stats.well_formed + TK[1].stats.well_formed));
		printf("typed_batches %lu\n", (unsigned long)TM.stats.batches);
		qsort(tops, (size_t)repeat, sizeof(double), cmp_double);
		printf("typed_orders_per_s_median %.0f\n", tops[repeat / 2]);
		printf("typed_time_shared %d\n", t_shared);
		printf("ratio_typed_to_full %.3f\n", tops[repeat / 2] / med[2]);
	}

	/* latency at paced rates, full pipeline and null */
	for (int i = 0; i < n_rates && want & 1u << PACED; i++) {
		uint32_t nf = frames_for_orders(&b->f, (uint64_t)(rates[i] * seconds));
		/* frames paced so that NewOrders come at the rate asked for */
		double run_fpo = (double)nf / (double)orders_in(&b->f, nf);
		for (int m = 0; m < 2; m++) {
			int mode = m == 0 ? MODE_FULL : MODE_NULL;
			static struct result r;
			char p[64];
			run_tries(b, attempts, mode, nf, rates[i] * run_fpo, 1, &r);
			bad += r.loss + r.system_rejects + r.drops;
			disturbed += r.disturbed;
			snprintf(p, sizeof(p), "r%.0f_%s", rates[i], MODE_NAME[mode]);
			print_run(p, &r, mode);
			char h[96];
			snprintf(h, sizeof(h), "%s_lat_order", p);
			print_hist(h, &r.burst_order, b->hz);
			snprintf(h, sizeof(h), "%s_lat_frame", p);
			print_hist(h, &r.burst_frame, b->hz);
			snprintf(h, sizeof(h), "%s_e2e_order", p);
			print_hist(h, &r.e2e_order, b->hz);
			snprintf(h, sizeof(h), "%s_ring_wait", p);
			print_hist(h, &r.wait_frame, b->hz);
		}
	}
	printf("problems %lu\n", (unsigned long)bad);
	/* kept runs in which other tasks took more than 1 % of a lcore */
	printf("disturbed_runs %d\n", disturbed);
	printf("time_shared %d\n", layout_shared || disturbed > 0);

	oms_port_stop(b->port);
	gen_free(&b->f);
	free(b->seq_idx);
	free(b->offer_tsc);
	free(b->brec);
	oms_eal_cleanup();
	return bad ? 1 : 0;
}
