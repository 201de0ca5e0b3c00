/* The core's private state: one struct per worker, owned by that worker. */
#ifndef OMS_CORE_INTERNAL_H
#define OMS_CORE_INTERNAL_H

#include <stdint.h>

#include "oms_core.h"
#include "orders.h"
#include "risk.h"

/* The replay buffers keep each outbound message in a slot of this size:
 * the largest strategy message is 64 bytes, the largest OUCH message we
 * send 52 (Enter Order with SharesLocated) plus its 2-byte length. */
#define REPLAY_SLOT 64

struct session {
	/* hot: every message */
	uint64_t next_in_seq;  /* next application seq expected */
	uint64_t next_out_seq; /* next application seq to send */
	uint32_t id;
	uint32_t ip;
	uint32_t live_head; /* live orders in creation order */
	uint32_t live_tail;
	uint16_t port;
	uint8_t mac[6];
	uint8_t enabled;
	uint8_t logged_in;
	uint8_t cancel_on_disconnect;
	/* timers */
	uint64_t last_rx;
	uint64_t last_tx;
	uint64_t heartbeat_ns;
	uint64_t timeout_ns;
	uint64_t gap_req_ns;    /* when the outstanding gap request was sent */
	uint32_t gap_req_count; /* 0: no request outstanding */
	struct risk_throttle throttle; /* NewOrder and Modify rate (bucket) */
	/* the last replay_depth outbound application messages, by seq */
	uint8_t *replay;
} __attribute__((aligned(64)));

struct venue {
	uint64_t next_out_seq; /* framing seq of our next message */
	uint64_t next_in_seq;  /* framing seq expected from the venue */
	uint32_t next_ref;     /* next OUCH UserRefNum */
	uint32_t ip;
	uint16_t id;
	uint16_t port;
	uint16_t request_port;
	uint8_t mac[6];
	char session[10];
	uint8_t down;
	uint64_t last_rx;
	uint64_t last_tx;
	uint64_t heartbeat_ns;
	uint64_t timeout_ns;
	uint64_t gap_req_ns;
	uint32_t gap_req_count;
	/* our last replay_depth messages to it: u16 length + OUCH message */
	uint8_t *replay;
	/* latency monitor (docs/semantics.md "Venue health") */
	uint32_t unanswered;
	uint32_t max_unanswered; /* 0: never unresponsive */
	uint64_t rtt_ewma_ns;
	uint64_t rtt_last_ns;
	uint64_t rtt_samples;
	uint64_t rtt_hist[OMS_RTT_BUCKETS];
	/* the venue's recent fill ratio, per mille (venue_fill_outcome) */
	uint32_t fill_ratio_pm;
	/* the fill model's probabilities for it (metrics) */
	uint32_t p_last_ppm;
	uint64_t p_sum_ppm;
	uint64_t p_count;
	/* its market data, read-only (NULL: none) */
	const struct oms_feed *feed;
} __attribute__((aligned(64)));

/* Observability (cdefs/stages.h, stages_record.h): this core's stage
 * histograms and per-type counters, and the messages of the current burst
 * whose transmit stages are still open. */
struct core_obs {
	uint64_t rx_tsc; /* the current burst was handed over */
	int msg_rejected; /* the message being handled was rejected */
	uint32_t n_pending;
	uint32_t pending_cap; /* = transmit slots */
	struct stage_pending {
		uint64_t rx;
		uint64_t begin; /* its handling began */
		uint64_t decided;
	} *pending;
	struct lat_hist *venue_rtt; /* by venue index, max_venues of them */
	uint64_t *routed;           /* Enter Orders sent, by venue index */
	struct oms_order_counts counts;
	struct lat_hist stage[OMS_STAGE_MAX];
};

/* Typed mode (priority.c): the application messages of the current burst
 * that passed the session layer and wait to be executed, per class, in
 * arrival order.  They point into the burst's frames, which outlive it. */
enum { PRIORITY_QUEUE = 1024 };

struct deferred_msg {
	const uint8_t *msg;
	uint32_t session;
	/* high: how many normal messages had arrived before it (the queued
	 * NewOrders a Cancel or MassCancel may take back) */
	uint32_t normal_before;
	uint8_t type;
	uint8_t voided; /* a NewOrder a Cancel took back before it ran */
};

struct priority_queues {
	uint32_t n_high;
	uint32_t n_normal;
	struct deferred_msg high[PRIORITY_QUEUE];
	struct deferred_msg normal[PRIORITY_QUEUE];
};

struct oms_core {
	struct oms_core_config cfg;
	uint64_t now_ns; /* of the burst being handled */

	struct order_table orders;
	/* the configuration generation this worker judges by (set at a burst
	 * boundary from `published`, which the control plane swaps) and the
	 * accounting it keeps across generations */
	const struct risk_gen *gen;
	uint64_t gen_number; /* gen's, readable from other threads */
	struct risk_gen *published;
	struct risk_state risk;

	struct session *sessions;
	uint32_t n_sessions;
	uint32_t *session_ix; /* id hash -> index + 1 */
	uint32_t session_mask;

	struct venue *venues;
	uint32_t n_venues;
	uint16_t *venue_by_id; /* venue id -> index + 1 */

	int timers_started; /* venue timers start at the first call */
	uint64_t next_timer; /* no timer is due before this */
	uint32_t replay_mask;

	/* set while a mass cancel, kill or cancel-on-disconnect walks the
	 * orders: the transmit area then has room for one Cancel per order
	 * beyond tx_capacity, so no bulk cancel is ever cut short */
	int bulk;

	/* the journal is full: a NewOrder is rejected SYS_JOURNAL.  An input,
	 * set between bursts by a command the journal records */
	uint8_t journal_full;

	uint8_t *tx_buf;
	uint16_t *tx_lens;
	uint32_t tx_count;

	/* the smart router's decisions, the last OMS_ROUTE_RING */
	struct oms_route_decision *route_ring;
	uint64_t route_seq;
	struct oms_route_counts route_counts;
	/* market data that journal replay hands MARKET records to */
	struct oms_md_dispatch *md;

	int timing;
	struct lat_hist lat;
	struct oms_stats stats;
	struct core_obs obs; /* cdefs/stages.h */

	int typed; /* execute by priority class (oms_core_set_typed) */
	struct priority_queues prio;
};

#endif
