/* Replay of a capture through a DPDK net_pcap port (omsctl replay
 * --backend dpdk): the worker lcore reads the capture from the port,
 * merges it with the venue simulator's answers (which come in on a ring
 * port) and with the core's timers, and calls the core exactly as the pcap
 * backend's scheduler does (dataplane/replay.py), so both give the same
 * bytes.  docs/dataplane.md, "Replay through net_pcap", says why each
 * piece is where it is.  Bound by cffi with oms_dpdk.h. */
#ifndef OMS_REPLAY_LOOP_H
#define OMS_REPLAY_LOOP_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "oms_dpdk.h"

struct rte_mbuf;

struct oms_replay_stats {
	uint64_t capture_frames;    /* received from the capture port */
	uint64_t answer_frames;     /* received from the venue port */
	uint64_t calls;             /* calls of the core, frames or not */
	uint64_t timer_calls;       /* of which without frames: timers due */
	uint64_t tx_frames;         /* handed to the venue port */
	uint64_t tx_dropped;        /* no mbuf for them */
	uint64_t steps;             /* waits for the venue's answers */
	uint64_t tx_full_waits;     /* waits for the main lcore to empty the TX ring */
	uint64_t time_backwards;    /* calls earlier than the call before */
	uint64_t stuck_timers;      /* deadline not past a timer call: ignored */
};

/* Shared between the main lcore (Python) and the worker: Python fills the
 * set-up fields and writes `acked` and `stop`; the worker writes `steps`,
 * `finished`, `stats` and `first_capture_raw`. */
struct oms_replay {
	struct oms_core *core;
	struct oms_md_dispatch *md; /* market data split off first; NULL: none */
	struct rte_mempool *pool;   /* mbufs for what the core sends */
	uint16_t capture_port;      /* net_pcap, rx_pcap= the capture */
	uint16_t venue_port;        /* ring port: answers in, everything the core sends out */
	/* now_ns = stamp * scale + base, for the capture port's mbuf
	 * timestamp: net_pcap in DPDK 22.11 stamps microseconds */
	uint64_t capture_ts_scale;
	uint64_t capture_ts_base;
	uint64_t horizon_ns;        /* timers run up to the capture's last time */
	/* frames from this UDP source port go to strategies, which do not
	 * answer; only frames to venues make the worker wait (a step) */
	uint16_t strategy_udp;
	int venue_answers;          /* 0: nothing answers the venue frames */
	int idle_sleep_us;          /* 0: spin while the main lcore works */
	volatile int stop;
	volatile int finished;
	/* a step: the worker has sent frames to venues and waits until the
	 * main lcore has taken them off the venue port and put their answers
	 * on it; the main lcore takes frames off whenever there are any */
	volatile uint64_t steps;
	volatile uint64_t acked;
	uint64_t first_capture_raw; /* the first capture frame's stamp, unscaled */
	struct oms_replay_stats stats;
	/* the worker's own: mbufs received and not yet handed to the core */
	struct rte_mbuf *cap[OMS_BURST];
	uint16_t cap_n, cap_i;
	int cap_eof;
	struct rte_mbuf *ans[OMS_BURST];
	uint16_t ans_n, ans_i;
};

int oms_replay_launch(struct oms_replay *r, unsigned lcore);

/* A net_pcap port reading `capture` (its devargs), made at run time. */
int oms_vdev_create(const char *name, const char *args);
int oms_vdev_remove(const char *name);

/* Main lcore: frames the worker sent, copied into `out` (OMS_TX_SLOT
 * apart) with their lengths and the now_ns they were sent at. */
uint32_t oms_replay_collect(struct rte_ring *ring, uint8_t *out, uint16_t *lens,
			    uint64_t *ts_ns, uint32_t max);

#endif
