/* The DPDK data plane around the core: EAL, mempools, ports, rings and the
 * worker loop that runs on its own lcore (cdefs/worker.c, cdefs/dpdk_io.c).
 * Python drives it through cffi (dataplane/dpdk.py); like oms_core.h, this
 * header is what cffi binds, read through the preprocessor with OMS_CFFI. */
#ifndef OMS_DPDK_H
#define OMS_DPDK_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "command.h"
#include "dpdk_obs.h"
#include "journal.h"
#include "link.h"
#include "oms_core.h"
#include "replication.h"

struct rte_mempool;
struct rte_ring;
struct rte_mbuf;
struct rte_rcu_qsbr;

/* Frames per rx/tx burst: big enough to amortise the per-burst cost,
 * small enough that the first frame does not wait long for the last. */
enum { OMS_BURST = 32, OMS_TX_STASH = 2 * OMS_BURST };

enum oms_worker_mode {
	/* frames carry their time in the mbuf timestamp field; each call of
	 * the core is acknowledged (replay: deterministic, lock-step) */
	OMS_MODE_REPLAY = 0,
	/* now_ns from the TSC, calibrated against the wall clock at start */
	OMS_MODE_LIVE = 1,
};

struct oms_worker_stats {
	uint64_t rx_frames;
	uint64_t tx_frames;
	uint64_t tx_retries;   /* a port did not take a burst at once: the worker waited */
	uint64_t tx_dropped;   /* could not be sent even after waiting */
	uint64_t mbuf_alloc_failed;
	uint64_t idle_polls;
	uint64_t busy_polls;
	uint64_t commands;
	uint64_t out_ring_waits; /* sharded: the out ring was full, the worker waited */
};

/* Typed mode (docs/dataplane.md "Threading"), the brief's threading model:
 * the I/O lcore reads just enough of each strategy datagram - its first
 * message's type and flags - to put it in a lane: a NewOrder flagged
 * PRIORITY in the high lane, a Modify to the modification worker, a Cancel
 * or MassCancel to the cancellation worker, everything else (normal
 * NewOrders, session messages, venue frames) in the normal lane.  The
 * modification and cancellation workers check what they can without the
 * order and hand the frame on to the placement worker, which owns the one
 * core: every order record, session and venue session has that one writer.
 * Each frame carries its arrival number (stamped by the I/O lcore), and the
 * placement worker hands the core frames in that order, however they
 * raced through the lanes; the core then runs the high class first
 * (oms_core_set_typed, cdefs/priority.c). */
enum oms_lane {
	OMS_LANE_NORMAL = 0, /* I/O lcore -> placement worker */
	OMS_LANE_HIGH = 1,   /* I/O lcore -> placement worker, PRIORITY orders */
	OMS_LANE_MODIFY = 2, /* modification worker -> placement worker */
	OMS_LANE_CANCEL = 3, /* cancellation worker -> placement worker */
	OMS_LANES = 4,
};

/* Arrival numbers in flight at once (a power of 2): more than every lane
 * ring and worker can hold, so the I/O lcore never has to wait for it
 * unless the placement worker is behind.  The placement worker hands the
 * core up to OMS_TYPED_BATCH frames per call: what a Cancel can overtake. */
enum { OMS_TYPED_WINDOW = 32768, OMS_TYPED_BATCH = 512 };

struct oms_typed_stats {
	uint64_t lane_rx[OMS_LANES]; /* frames the placement worker took per lane */
	uint64_t batches;
	uint64_t waits; /* polls that left frames waiting for an earlier one
			 * still in a lane (a Modify or Cancel overtaken) */
};

/* The placement worker's side: its lanes and the reorder window. */
struct oms_typed {
	struct rte_ring *lane[OMS_LANES];
	/* frames per core call: what the core's transmit area has room for
	 * (a quarter of tx_capacity, as a burst in the other modes), at most
	 * OMS_TYPED_BATCH; 0: OMS_TYPED_BATCH */
	uint32_t batch;
	uint32_t next;              /* arrival number the core takes next */
	volatile uint32_t consumed; /* = next, published for the I/O lcore */
	struct oms_typed_stats stats;
	struct rte_mbuf *window[OMS_TYPED_WINDOW];
};

enum { OMS_CHECKER_SESSIONS = 64 };

struct oms_checker_stats {
	uint64_t frames;
	uint64_t messages;
	uint64_t well_formed;     /* right version, length, session and source */
	uint64_t malformed;       /* framing, version or length wrong */
	uint64_t unknown_session; /* or from another address than its own */
	uint64_t order_free_rejects; /* a Modify wrong whatever its order */
	uint64_t out_waits;
	uint64_t idle_polls;
	uint64_t busy_polls;
};

/* A modification or cancellation worker.  It never writes an order record
 * or a session: it checks each frame against the configuration (read-only
 * here) and hands it on, unchanged and in its order, to the placement
 * worker, whose core consumes its sequence number and answers it. */
struct oms_checker {
	struct rte_ring *in_ring;  /* from the I/O lcore */
	struct rte_ring *out_ring; /* to the placement worker's lane */
	uint32_t ip;          /* the appliance's */
	uint16_t strategy_udp;
	uint32_t n_sessions;
	struct oms_checker_session {
		uint32_t id;
		uint32_t ip;
		uint16_t port;
	} sessions[OMS_CHECKER_SESSIONS];
	int idle_sleep_us;
	volatile int stop;
	struct oms_checker_stats stats;
};

int oms_checker_launch(struct oms_checker *k, unsigned lcore);

/* (port, queue) pairs one worker polls: two ports of four queues */
enum { OMS_MAX_RX = 8 };

/* One worker lcore: what it polls, what it runs, where it sends.  Shared
 * with the main lcore: `stop` and `tick_ns` are written by Python, `done`
 * and the stats by the worker. */
struct oms_worker {
	struct oms_core *core;
	/* market data taken off each burst for its feeds, which this worker
	 * writes between bursts (docs/market-data.md "Wiring"); NULL: none */
	struct oms_md_dispatch *md;
	struct rte_mempool *pool;
	struct rte_ring *commands; /* struct oms_command *, from the control plane */
	struct oms_journal *journal; /* NULL: none; appended before each flush */
	/* hot standby (NULL: none): a backup or fenced worker runs nothing and
	 * sends nothing; polled at the top of every iteration */
	struct oms_repl *repl;
	/* every (port, queue) it polls: each is polled by this worker alone */
	uint16_t n_rx;
	uint16_t rx_port[OMS_MAX_RX];
	uint16_t rx_queue[OMS_MAX_RX];
	/* where frames go: towards strategies (UDP source port strategy_udp)
	 * or venues (everything else) */
	uint16_t strategy_tx_port;
	uint16_t venue_tx_port;
	uint16_t tx_queue;
	uint16_t strategy_udp;
	/* the appliance's address, for ARP and ICMP on live ports */
	uint8_t mac[6];
	uint32_t ip;
	int answer_link; /* live ports: handle ARP/ICMP before the core */
	struct link_stats link;
	int mode;
	int idle_sleep_us; /* 0: pure busy poll; else back off when idle */
	/* how long to wait for a port to take a burst (worker.c port_put);
	 * 0: TX_WAIT_US */
	uint32_t tx_wait_us;
	volatile int stop;
	volatile uint64_t done; /* frames + ticks fully handled (replay) */
	/* DPDK RCU (QSBR): the worker reports a quiescent state, thread id
	 * rcu_id, at the top of every poll, where it holds no configuration
	 * generation; NULL: no reloads */
	struct rte_rcu_qsbr *rcu;
	unsigned rcu_id;
	/* sharded mode (io_lcore.c): frames come from the I/O lcore on
	 * in_ring and leave through out_ring (mbuf->port: where to), instead
	 * of the ports; both single-producer/single-consumer */
	struct rte_ring *in_ring;
	struct rte_ring *out_ring;
	/* typed mode: the placement worker's lanes (then in_ring is NULL) */
	struct oms_typed *typed;
	struct oms_worker_stats stats;
	/* live mode clock: now_ns = wall_base_ns + (tsc - tsc_base) * ns_per_tsc */
	uint64_t tsc_base;
	uint64_t wall_base_ns;
	double ns_per_tsc;
	/* TX mbufs taken from the pool ahead of the core's output, their lines
	 * prefetched for writing (worker.c tx_stash_refill); back in the pool
	 * when the worker stops */
	uint32_t n_stash;
	uint32_t stash_data_off; /* from the mbuf to its data, once reset */
	uint32_t stash_headroom; /* data_off of a reset mbuf */
	uint32_t tx_stuck; /* ports (bit = port id < 32) that took nothing in a whole wait */
	struct rte_mbuf *tx_stash[OMS_TX_STASH];
	/* received mbufs the core has finished with, which flush_tx fills
	 * before the stash (worker.c handle_rx); empty outside handle_rx */
	struct rte_mbuf **reuse;
	uint32_t n_reuse;
};

/* Sharded mode, in the manner of DPDK's load_balancer sample: one I/O lcore
 * polls every port, answers ARP and ICMP, and hands each frame to the worker
 * that owns its session (strategy frames, by source address and port) or its
 * venue (by source address) through that worker's SPSC ring; it sends what
 * the workers put on their out rings.  Each worker owns its sessions, venues
 * and accounts, so every table has one writer. */
enum { OMS_MAX_WORKERS = 8, OMS_MAX_IO_ROUTES = 256 };

struct oms_io_route {
	uint32_t ip;
	uint16_t port;   /* UDP source port; 0: any (venues) */
	uint16_t worker;
};

struct oms_io_stats {
	uint64_t rx_frames;
	uint64_t tx_frames;
	uint64_t to_worker[OMS_MAX_WORKERS];
	uint64_t unrouted;         /* no route: to worker 0, whose core counts the drop */
	uint64_t worker_ring_full; /* a worker's in ring was full: dropped, counted */
	uint64_t tx_retries;
	uint64_t tx_dropped;
	uint64_t idle_polls;
	uint64_t busy_polls;
	uint64_t tx_waits; /* a port did not take the workers' output at once: it waited here */
};

struct oms_io {
	uint16_t n_rx;
	uint16_t rx_port[OMS_MAX_RX];
	uint16_t n_workers;
	struct rte_ring *in_ring[OMS_MAX_WORKERS];
	struct rte_ring *out_ring[OMS_MAX_WORKERS];
	uint16_t strategy_udp;
	uint32_t n_routes;
	struct oms_io_route routes[OMS_MAX_IO_ROUTES];
	uint8_t mac[6];
	uint32_t ip;
	struct rte_mempool *pool;
	struct link_stats link;
	int idle_sleep_us;
	volatile int rx_off; /* stopping: receive no more, keep sending */
	volatile int stop;   /* after a last drain of the out rings */
	struct oms_io_stats stats;
	/* typed mode: lanes instead of workers' in rings (the placement
	 * worker's out ring is out_ring[0]) */
	int typed;
	struct rte_ring *lane[OMS_LANES]; /* normal, high, to modify, to cancel */
	struct oms_typed *merge;          /* the placement worker's window */
	uint32_t next_arrival;
	uint64_t lane_tx[OMS_LANES];
	/* output a port has not taken yet, in order (io_lcore.c drain): a
	 * burst from a worker's out ring, and the link layer's answers (ARP,
	 * ICMP echo) queued behind it; nothing more is taken from the out
	 * rings until it is sent */
	uint16_t n_pend;
	struct rte_mbuf *pend[2 * OMS_BURST];
};


int oms_io_launch(struct oms_io *io, unsigned lcore);
unsigned oms_ring_count(const struct rte_ring *r);

/* One steering rule: ETH / IPV4 (dst & mask) / UDP (dst port) -> QUEUE.
 * A zero field matches anything. Host byte order. */
struct oms_flow_rule {
	uint32_t dst_ip;
	uint32_t dst_ip_mask;
	uint16_t udp_dst_port;
	uint16_t queue;
};

/* 0 if the port can apply the rule in hardware (rte_flow_validate), else
 * -1 and why in err. */
int oms_flow_validate(uint16_t port, const struct oms_flow_rule *r, char *err,
		      unsigned errlen);
int oms_flow_create(uint16_t port, const struct oms_flow_rule *r, char *err,
		    unsigned errlen);

int oms_eal_init(int argc, char **argv);
int oms_eal_cleanup(void);
unsigned oms_next_worker_lcore(unsigned after);

struct rte_mempool *oms_pool_create(const char *name, unsigned n, int socket);
unsigned oms_pool_in_use(const struct rte_mempool *p);
struct rte_ring *oms_ring_create(const char *name, unsigned size, int socket, int single);
void oms_ring_free(struct rte_ring *r);
/* A port made from two rings (DPDK's net_ring): frames enqueued on `rx`
 * are received by the port, frames it sends appear on `tx`. */
int oms_port_from_rings(const char *name, struct rte_ring *rx, struct rte_ring *tx,
			int socket);
int oms_port_by_name(const char *name);
/* Configure `port` with one RX and one TX queue fed from `pool` and start
 * it; on failure -1 and the reason in err. */
int oms_port_start(uint16_t port, struct rte_mempool *pool, char *err, unsigned errlen);
/* What a port is asked for at start (dataplane.mtu, dataplane.rx_queues)
 * and what it turned out to be: the driver's limits, the MTU and RX queues
 * in force, RSS, the link.  A request the device cannot meet is an error
 * with the reason, not a silent downgrade - except more RX queues than the
 * device has, which it caps and says so (info.rx_queues). */
struct oms_port_conf {
	uint16_t mtu;       /* 0: the DPDK default, 1500 */
	uint16_t rx_queues; /* 1..OMS_MAX_RX; more than one: RSS spreads flows over them */
};

struct oms_port_info {
	char driver[32];
	uint16_t mtu, min_mtu, max_mtu;
	uint8_t mtu_settable; /* 0: the driver has no MTU control (ring, null) */
	uint16_t rx_queues, max_rx_queues;
	uint64_t rss_hf;      /* RSS hash functions in force; 0: RSS off */
	uint64_t rss_offered; /* what the device could hash on */
	uint32_t max_frame;   /* bytes an mbuf of the pool holds */
	uint8_t link_up, link_full_duplex, link_autoneg;
	uint32_t link_speed_mbps; /* 0: unknown */
};

int oms_port_start_conf(uint16_t port, struct rte_mempool *pool, const struct oms_port_conf *pc,
			struct oms_port_info *info, char *err, unsigned errlen);
/* the link's state now, without waiting (fills the link_* fields);
 * wait_ms > 0: poll until it is up or that long has passed */
int oms_port_link(uint16_t port, struct oms_port_info *info, unsigned wait_ms);
void oms_port_stop(uint16_t port);
void oms_port_close(uint16_t port);
int oms_port_stats(uint16_t port, uint64_t *ipackets, uint64_t *opackets,
		   uint64_t *imissed, uint64_t *oerrors);
int oms_port_socket(uint16_t port);
/* The port's multicast address list (rte_eth_dev_set_mc_addr_list): the
 * market data's group MACs, 6 bytes each.  0, or -ENOTSUP where the port
 * has none (then the software filter alone keeps other groups out). */
enum { OMS_MAX_MC_ADDRS = 64 };
int oms_port_set_mc_list(uint16_t port, const uint8_t *macs, uint32_t n);

/* Main-lcore helpers for replay through a ring port: frames in as mbufs
 * stamped with ts_ns; frames out copied into `out` (OMS_TX_SLOT apart). */
int oms_inject(struct rte_mempool *pool, struct rte_ring *ring,
	       const uint8_t *const *frames, const uint16_t *lens, uint32_t n,
	       uint64_t ts_ns);
uint32_t oms_collect(struct rte_ring *ring, uint8_t *out, uint16_t *lens, uint32_t max);
/* The same, with each frame's mbuf timestamp in ts_ns (NULL: none). */
uint32_t oms_collect_ts(struct rte_ring *ring, uint8_t *out, uint16_t *lens, uint64_t *ts_ns,
			uint32_t max);
int oms_command(struct rte_ring *ring, struct oms_command *cmd);

/* RCU for configuration generations: a QSBR variable for `threads`
 * workers, and the control plane's wait for a grace period - every online
 * worker has reported a quiescent state since the call - of at most
 * timeout_ms: 0, or -1 on timeout (then nothing may be freed). */
struct rte_rcu_qsbr *oms_rcu_create(unsigned threads);
void oms_rcu_free(struct rte_rcu_qsbr *v);
int oms_rcu_wait(struct rte_rcu_qsbr *v, unsigned timeout_ms);

int oms_worker_launch(struct oms_worker *w, unsigned lcore);
int oms_worker_wait(unsigned lcore);
/* Whether the lcore's function has returned. */
int oms_worker_running(unsigned lcore);

#endif
