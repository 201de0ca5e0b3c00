/* The order pipeline core: the API that backends (pcap replay, DPDK, AF_XDP)
 * and the Python control plane use.  The core takes bursts of frames with
 * the time they arrived and returns frames to transmit; it never reads a
 * clock to decide anything and never allocates after oms_core_create().
 *
 * This header is also what cffi binds: dataplane/build_core.py runs it
 * through the C preprocessor with OMS_CFFI defined, so everything cffi
 * cannot parse sits behind #ifndef OMS_CFFI.
 */
#ifndef OMS_CORE_H
#define OMS_CORE_H

#ifndef OMS_CFFI
#include <stddef.h>
#include <stdint.h>
#endif

#include "sp_wire.h"
#include "latency.h"
#include "link.h"
#include "feed.h"
#include "igmp.h"
#include "md_dispatch.h"
#include "fill_model.h"

/* Size of one transmit slot: the largest frame the core builds (an OUCH
 * Enter Order with its appendage behind Ethernet/IPv4/UDP and the packet
 * header) is under 110 bytes. */
enum { OMS_TX_SLOT = 256 };

enum oms_result { OMS_OK = 0 };

/* Frames and messages dropped, by reason.  Nothing is dropped silently:
 * each drop lands in exactly one of these counters. */
#define OMS_DROP_LIST(X)                                                      \
	X(RUNT) X(NOT_IPV4) X(BAD_IP_HEADER) X(BAD_IP_LENGTH)                 \
	X(IP_CHECKSUM) X(IP_FRAGMENT) X(NOT_UDP) X(NOT_FOR_US)                \
	X(BAD_UDP_LENGTH) X(UDP_CHECKSUM) X(UNKNOWN_PORT)                     \
	X(SP_TRUNCATED) X(SP_BAD_LENGTH) X(SP_BAD_VERSION)                    \
	X(SP_UNKNOWN_SESSION) X(SP_WRONG_SOURCE) X(SP_NOT_LOGGED_IN)          \
	X(SP_DUPLICATE_SEQ) X(SP_UNKNOWN_TYPE) X(SP_BAD_MSG_LENGTH)           \
	X(SP_OUT_OF_ORDER) X(UFO_OUT_OF_ORDER)                                \
	X(UFO_TRUNCATED) X(UFO_UNKNOWN_VENUE) X(UFO_WRONG_SESSION)            \
	X(UFO_BAD_BLOCK) X(UFO_DUPLICATE_SEQ) X(OUCH_UNKNOWN_TYPE)            \
	X(OUCH_BAD_LENGTH) X(OUCH_UNKNOWN_REF) X(OUCH_UNEXPECTED)             \
	X(OUCH_OVERFILL) X(TX_FULL)

#define OMS_EVENT_LIST(X)                                                     \
	X(FRAMES_IN) X(FRAMES_OUT) X(SP_MSGS_IN) X(SP_MSGS_OUT)               \
	X(SP_SEQ_GAPS) X(SP_SEQ_GAP_MSGS) X(LOGINS) X(LOGOUTS)                \
	X(HEARTBEATS_IN) X(ORDERS_ACCEPTED_INTERNAL) X(VENUE_MSGS_IN)         \
	X(VENUE_MSGS_OUT) X(VENUE_SEQ_GAPS) X(VENUE_SEQ_GAP_MSGS)             \
	X(VENUE_END_OF_SESSION) X(VENUE_HEARTBEATS) X(VENUE_IGNORED_TYPES)    \
	X(ORDERS_EVICTED) X(SP_RETRANSMIT_REQUESTS) X(SP_RETRANSMITTED)       \
	X(SESSION_TIMEOUTS) X(HEARTBEATS_OUT) X(VENUE_RECONNECTS)             \
	X(VENUE_RETRANSMIT_REQUESTS) X(VENUE_RETRANSMIT_TOO_OLD)              \
	X(VENUE_RETRANSMITTED) X(VENUE_TIMEOUTS) X(VENUE_HEARTBEATS_OUT)      \
	X(CANCEL_ON_DISCONNECT) X(KILL_CANCELS) X(CONFIG_SWAPS)               \
	X(VENUE_UNRESPONSIVE) X(ORDERS_ROUTED) X(QUEUED_CANCELS)

#define OMS_ENUM_DROP(n) OMS_DROP_##n,
#define OMS_ENUM_EVENT(n) OMS_EV_##n,
enum oms_drop {
	OMS_DROP_NONE_ = 0, /* 0 is OMS_OK */
	OMS_DROP_LIST(OMS_ENUM_DROP)
	OMS_DROP_MAX
};
enum oms_event { OMS_EVENT_LIST(OMS_ENUM_EVENT) OMS_EV_MAX };

enum oms_order_state {
	OMS_ST_NONE = 0,
	OMS_ST_PENDING_NEW = 1,
	OMS_ST_NEW = 2,
	OMS_ST_PARTIALLY_FILLED = 3,
	OMS_ST_FILLED = 4,
	OMS_ST_PENDING_REPLACE = 5,
	OMS_ST_REPLACED = 6,
	OMS_ST_PENDING_CANCEL = 7,
	OMS_ST_CANCELED = 8,
	OMS_ST_REJECTED = 9,
	OMS_ST_EXPIRED = 10,
	OMS_ST_MAX = 11,
};

enum { OMS_REJ_BUSINESS_SLOTS = 64, OMS_REJ_SYSTEM_SLOTS = 8 };

#include "stages.h" /* after the reject slots, which its counters use */
/* accounts one session may be limited to (sessions[].accounts) */
enum { OMS_SESSION_ACCOUNTS = 16 };

struct oms_stats {
	uint64_t drop[OMS_DROP_MAX];
	uint64_t event[OMS_EV_MAX];
	uint64_t reject_business[OMS_REJ_BUSINESS_SLOTS]; /* by reason */
	uint64_t reject_system[OMS_REJ_SYSTEM_SLOTS];     /* by reason-1000 */
	uint64_t sp_in[256];    /* by strategy message type */
	uint64_t sp_out[256];
	uint64_t venue_in[256]; /* by OUCH message type letter */
	uint64_t venue_out[256];
};

struct oms_core_config {
	uint8_t mac[6];
	uint32_t ip;            /* host byte order */
	uint16_t strategy_port; /* UDP port strategies send to */
	uint16_t venue_port;    /* UDP port venues send to, our source port */
	uint32_t order_capacity;
	uint32_t max_sessions;
	uint32_t max_venues;
	uint32_t max_instruments;
	uint32_t tx_capacity; /* frames one burst may produce */
	uint8_t ouch_capacity; /* OUCH Capacity letter, 'A' agency ... */
	uint16_t venue_request_port; /* where venues send retransmission requests */
	uint32_t replay_depth;       /* messages kept per session / venue, power of 2 */
	uint64_t retransmit_ns;      /* resend an unanswered gap request after this */
	/* NIC checksum offload (live DPDK ports that have it; never in
	 * replay): OMS_CSUM_RX_VERIFIED - the backend hands over only frames
	 * whose IPv4 and UDP checksums the NIC found good, so the core does
	 * not sum them again; OMS_CSUM_TX_OFFLOAD - the core leaves the IPv4
	 * checksum 0 and puts the pseudo-header sum in the UDP checksum, for
	 * the NIC to finish (DPDK's convention). */
	uint8_t checksum_offload;
	/* risk slots: every account, and (account, symbol) with a limit or a
	 * route, ever configured during the run takes one (0: 1024, 16384) */
	uint32_t max_accounts;
	uint32_t max_positions;
};

enum { OMS_CSUM_RX_VERIFIED = 1, OMS_CSUM_TX_OFFLOAD = 2 };

struct oms_session_config {
	uint32_t id;
	uint32_t ip;
	uint16_t port;
	uint8_t mac[6];
	uint8_t enabled;
	uint64_t heartbeat_ns;
	uint64_t timeout_ns;
	/* a timeout (SESSION_TIMEOUTS) cancels the session's open orders */
	uint8_t cancel_on_disconnect;
};

struct oms_venue_config {
	uint16_t id;
	uint32_t ip;
	uint16_t port;
	uint8_t mac[6];
	char session[10]; /* the framing's session name, space padded */
	uint16_t request_port; /* where it takes retransmission requests */
	uint64_t heartbeat_ns;
	uint64_t timeout_ns;
	/* this many Enter Orders without any answer: unresponsive, the router
	 * avoids it until answers come (0: never) */
	uint32_t max_unanswered;
};

struct oms_instrument_config {
	char symbol[8]; /* space padded */
	/* pre-trade risk; prices fixed point with 8 decimals */
	int64_t tick_size;       /* 0: 10^4 (OUCH's 4 decimals) */
	uint32_t lot_size;       /* 0: 1 */
	int64_t reference_price; /* 0: none */
	int64_t band_pct;        /* percent, 8 decimals; 0: none */
	int64_t band_abs;        /* 0: none */
	uint8_t restricted;
	uint8_t halted;
	uint8_t n_venues;        /* 0: tradable on every venue */
	uint16_t venues[16];     /* venue ids (configured before) */
};

/* A trading account's pre-trade limits (amounts fixed point, 8 decimals). */
struct oms_account_config {
	uint32_t id;
	uint32_t max_order_qty;
	int64_t max_order_notional;
	uint32_t max_open_orders;
	int64_t credit_limit;   /* max open notional */
	uint8_t ord_types;      /* bit (1 << SP_ORD_*) set: permitted */
	uint8_t tifs;           /* bit (1 << SP_TIF_*) set: permitted */
	uint8_t kill;           /* kill switch engaged: every order rejected */
};

/* A routing rule: orders that name no venue (venue 0) go by the most
 * specific rule that matches - (account, symbol), then symbol, then
 * account, then the rule with neither (the default venue). */
struct oms_route_config {
	uint32_t account;
	char symbol[8]; /* space padded */
	uint16_t venue; /* venue id; 0 with `sor`: the smart router */
	uint8_t by_account;
	uint8_t by_symbol;
	uint8_t sor;
	uint8_t n_exclude;    /* the router never picks these venues */
	uint16_t exclude[16]; /* venue ids */
};

/* Venue latency monitoring (docs/semantics.md "Venue health"): round trip
 * from an Enter Order to the venue's first answer to it, on the bursts'
 * now_ns. */
enum { OMS_RTT_BUCKETS = 40 };
struct oms_venue_latency {
	uint64_t rtt_ewma_ns;  /* alpha 1/8; 0: no sample yet */
	uint64_t rtt_last_ns;
	uint64_t rtt_samples;
	uint32_t unanswered;   /* Enter Orders sent, not yet answered */
	uint8_t down;          /* heartbeat timeout */
	uint8_t unresponsive;  /* unanswered >= max_unanswered */
	uint8_t pad_[2];
	/* bucket 0: under 2 ns; bucket b: [2^b, 2^(b+1)) ns; the last: above */
	uint64_t rtt_hist[OMS_RTT_BUCKETS];
	/* the fill model (docs/fill-model.md "Metrics"): the venue's recent
	 * fill ratio, and the probabilities the model gave it - the last, in
	 * parts per million, their sum and their number */
	uint32_t fill_ratio_pm;
	uint32_t p_last_ppm;
	uint64_t p_sum_ppm;
	uint64_t p_count;
};

/* Routing decisions by who decided: the fill model, or the rules (each
 * decision of the smart router that chose a venue counts once). */
struct oms_route_counts {
	uint64_t by_model;
	uint64_t by_rules;
};

/* Smart order routing (docs/semantics.md "Smart order routing"): every
 * decision is written to a ring the replay tool reads. */
enum { OMS_ROUTE_SEEN = 8, OMS_ROUTE_RING = 1024 };
enum oms_route_why {
	OMS_RW_CHOSEN = 1,      /* the best */
	OMS_RW_WORSE = 2,       /* eligible, lost on price, size or latency */
	OMS_RW_EXCLUDED = 3,    /* the routing rule excludes it */
	OMS_RW_NOT_ALLOWED = 4, /* the instrument's venues do not list it */
	OMS_RW_NO_FEED = 5,     /* no market data from it */
	OMS_RW_STALE = 6,       /* its book is stale (gap, quiet, ...) */
	OMS_RW_HALTED = 7,      /* its feed halts the symbol */
	OMS_RW_DOWN = 8,        /* heartbeat timeout */
	OMS_RW_UNRESPONSIVE = 9,/* too many unanswered orders */
	OMS_RW_NO_QUOTE = 10,   /* nothing displayed on the side we take */
	OMS_RW_THROUGH_LIMIT = 11, /* its best is beyond the limit price */
	OMS_RW_SPLIT = 12,      /* not the best, but takes a child of a split */
};
/* A split order has at most this many children (routing.split_max_children). */
enum { OMS_SPLIT_MAX = 4 };
/* One cache line: the ring is written on every routed order. */
struct oms_route_seen {
	int64_t px;           /* its best on the side the order takes */
	int64_t cost;         /* latency cost in price units */
	uint64_t rtt_ewma_ns;
	/* what else the fill model reads, as the router saw it (the journal's
	 * ROUTE records, docs/fill-model.md "Dataset from journals"): the
	 * other side of the venue's book (0: none), the time since the book
	 * last changed in the model's unit (us, at most UINT32_MAX), the
	 * venue's recent fill ratio */
	int64_t contra_px;
	uint32_t qty;         /* displayed there */
	uint32_t contra_qty;
	int32_t p_fill;       /* the fill model's probability, Q30; -1: none */
	uint32_t alloc;       /* shares sent there (the child's, when split) */
	uint32_t ref;         /* the OUCH UserRefNum of the order sent there; 0: none */
	uint32_t quote_age_us;
	uint16_t venue;       /* id */
	uint16_t fill_ratio_pm;
	uint8_t why;          /* enum oms_route_why */
	uint8_t pad_[3];
};
struct oms_route_decision {
	uint64_t seq;         /* 1, 2, ... per core */
	uint64_t now_ns;
	uint64_t cl_ord_id;
	int64_t price;        /* limit; 0 for market */
	uint32_t session_id;
	uint32_t account;
	uint32_t qty;
	uint16_t venue;       /* chosen id; 0: none (NO_ROUTE) */
	uint8_t side;
	uint8_t n_seen;       /* venues considered, in configuration order */
	char symbol[8];
	uint64_t model_id;    /* the generation's fill model (0: none) */
	uint8_t by_model;     /* 1: chosen by expected value; 0: by the rules */
	uint8_t n_children;   /* split into this many orders; 0: not split */
	uint8_t ord_type;
	uint8_t tif;
	uint8_t pad_[4];
	struct oms_route_seen seen[OMS_ROUTE_SEEN];
};

/* Risk accounting, for tests and tools. */
struct oms_account_view {
	uint32_t open_orders;
	int64_t open_notional;
};

struct oms_position_view {
	int64_t max_position;
	int64_t position;  /* filled: bought - sold */
	int64_t open_buy;  /* reserved by live buy orders */
	int64_t open_sell; /* by live sell and sell-short orders */
};

/* A copy of one order, for tests and tools; not used on the hot path. */
struct oms_order_view {
	uint64_t cl_ord_id;
	uint32_t session_id;
	uint32_t account;
	int64_t price;
	int64_t pending_price;
	uint32_t qty;
	uint32_t pending_qty;
	uint32_t cum_qty;
	uint32_t leaves_qty;
	uint32_t ref;
	uint32_t pending_ref;
	uint16_t venue;
	uint8_t state;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t flags;
	uint8_t acked;
	uint8_t children; /* a split order: its children's number; else 0 */
	uint64_t state_ts[OMS_ST_MAX]; /* now_ns when it entered each state */
};

struct oms_core;

struct oms_core *oms_core_create(const struct oms_core_config *cfg);
void oms_core_destroy(struct oms_core *c);
/* Return 0, or -1 when the table is full or the id is already there. */
int oms_core_add_session(struct oms_core *c,
			 const struct oms_session_config *s);
int oms_core_add_venue(struct oms_core *c, const struct oms_venue_config *v);

/* Configuration generations (docs/semantics.md "Configuration
 * generations").  The control plane builds a generation from the
 * configuration - instruments first, then accounts, position limits,
 * routes, throttles - starting from the one published before (NULL for the
 * first), then publishes it: the worker switches to it at the start of its
 * next burst (or command), so one burst is judged by one generation.
 * oms_core_publish() hands back the generation it replaced, which the
 * caller frees with oms_gen_free() once no worker can still be using it:
 * at once when the caller is the worker's thread, else after every worker
 * has passed a quiescent point (RCU).  Venues and sessions are fixed at
 * start and must be added before the first generation is built.
 * The oms_gen_add_* calls return 0, or -1 when full, duplicate, unknown or
 * out of range. */
struct risk_gen;
struct risk_gen *oms_gen_create(const struct oms_core *c, const struct risk_gen *prev);
void oms_gen_free(struct risk_gen *g);
uint64_t oms_gen_number(const struct risk_gen *g);
int oms_gen_add_instrument(struct risk_gen *g, const struct oms_core *c,
			   const struct oms_instrument_config *i);
int oms_gen_add_account(struct risk_gen *g, const struct oms_account_config *a);
int oms_gen_add_position_limit(struct risk_gen *g, uint32_t account,
			       const char symbol[8], int64_t max_position);
int oms_gen_add_route(struct risk_gen *g, const struct oms_core *c,
		      const struct oms_route_config *r);
/* The router's price of latency: price units (8 decimals) per microsecond
 * of a venue's expected round trip (0: latency only breaks ties). */
int oms_gen_set_sor_cost(struct risk_gen *g, int64_t cost_per_us);
/* The fill-probability model the router scores venues with (copied and
 * checked: -1 if inconsistent; NULL: none) and its price of a miss, in
 * price units a share (docs/fill-model.md "In the router"). */
int oms_gen_set_fill_model(struct risk_gen *g, const struct oms_fill_model *m,
			   int64_t miss_penalty);
/* Its id (0: none). */
uint64_t oms_gen_fill_model_id(const struct risk_gen *g);
/* Split an order across at most this many venues when the best shows less
 * than it needs (1: never; at most OMS_SPLIT_MAX). */
int oms_gen_set_sor_split(struct risk_gen *g, uint32_t max_children);
/* The accounts a session may trade (n = 0: any configured account). */
int oms_gen_set_session_accounts(struct risk_gen *g, const struct oms_core *c,
				 uint32_t session_id, const uint32_t *accounts, uint32_t n);
/* NewOrder + Modify per second (0: none) and the bucket's size. */
int oms_gen_set_throttle(struct risk_gen *g, const struct oms_core *c,
			 uint32_t session_id, uint32_t per_s, uint32_t burst);
/* Returns the generation replaced; `g` itself when refused (built for a
 * core of other sizes). */
struct risk_gen *oms_core_publish(struct oms_core *c, struct risk_gen *g);
const struct risk_gen *oms_core_published(const struct oms_core *c);
/* Take the published generation now rather than at the next burst: only
 * from the thread that drives the core (then the replaced one can be freed
 * at once). */
void oms_core_take_generation(struct oms_core *c);
/* The number of the generation the worker judges by (0: none yet). */
uint64_t oms_core_generation(const struct oms_core *c);

/* The journal's health as the core judges by it (docs/durability.md
 * "Full disk"): while full, every NewOrder is rejected SYS_JOURNAL; cancels,
 * replaces and venue answers go on.  Set between bursts only, through
 * OMS_CMD_JOURNAL_FULL, which the journal records. */
int oms_core_set_journal_full(struct oms_core *c, int full);
int oms_core_journal_full(const struct oms_core *c);
/* The operator's kill switch of an account, engaged (1) or released (0),
 * between bursts; -1 for an unknown account.  Cancels nothing: see
 * oms_core_kill. */
int oms_core_set_kill(struct oms_core *c, uint32_t account, int on);
/* The operator's kill switch (control plane, through the owning worker's
 * command ring; docs/semantics.md "Kill switch"): `account` 0 sets every
 * account's switch (and accounts added later start with it set), else
 * that account's own.  Engaging it (on != 0) also cancels every cancellable open
 * order it covers, in every session, as MassCancel does; the Cancel Orders
 * are appended to the transmit area.  Returns the number of orders
 * canceled (0 when releasing), or -1 for an unknown account. */
int oms_core_kill(struct oms_core *c, uint32_t account, int on, uint64_t now_ns);
int oms_core_account_view(const struct oms_core *c, uint32_t account,
			  struct oms_account_view *out);
int oms_core_position_view(const struct oms_core *c, uint32_t account,
			   const char symbol[8], struct oms_position_view *out);

/* Run the timers due at `now_ns`, then handle `n` received frames that
 * arrived at `now_ns`; append what they cause to the transmit area.
 * Returns the number of frames waiting there. */
uint32_t oms_core_process_burst(struct oms_core *c,
				const uint8_t *const *frames,
				const uint16_t *lens, uint32_t n,
				uint64_t now_ns);

/* The operator's mass cancel (control plane, through the owning worker's
 * command ring): as a strategy's MassCancel for that session and account.
 * Returns the number of orders canceled, or -1 for an unknown session. */
int oms_core_mass_cancel(struct oms_core *c, uint32_t session_id, uint32_t account,
			 uint64_t now_ns);

/* Market data (docs/semantics.md "Market data in the core"): the feed of
 * venue `venue_id`, read-only - top of book and halts, written only by the
 * feed's one writer (on this machine the same worker, between bursts).
 * NULL detaches.  -1: unknown venue. */
int oms_core_set_feed(struct oms_core *c, uint16_t venue_id, const struct oms_feed *f);
/* The dispatcher in front of those feeds, for the journal's MARKET records
 * when the core is rebuilt from a journal (recovery, hot standby); the live
 * path never uses it.  NULL: none. */
void oms_core_set_market(struct oms_core *c, struct oms_md_dispatch *md);
struct oms_md_dispatch *oms_core_market(const struct oms_core *c);
int oms_core_venue_latency(const struct oms_core *c, uint16_t venue_id,
			  struct oms_venue_latency *out);
/* Copies the routing decisions numbered `from_seq` and up that are still in
 * the ring (the last OMS_ROUTE_RING), at most `max`; returns how many.
 * oms_core_route_seq() is the number of the latest (0: none). */
uint32_t oms_core_route_decisions(const struct oms_core *c, uint64_t from_seq,
				  struct oms_route_decision *out, uint32_t max);
uint64_t oms_core_route_seq(const struct oms_core *c);
void oms_core_route_counts(const struct oms_core *c, struct oms_route_counts *out);

/* When the next timer is due (UINT64_MAX: none).  A backend that has no
 * frames calls oms_core_process_burst with n = 0 at that time. */
uint64_t oms_core_next_deadline(const struct oms_core *c);
/* Whether a call with no frames at `now_ns` would run any timer: one
 * comparison, for a live poll loop to ask on every turn (the exact deadline
 * above walks every session and venue). */
int oms_core_timer_due(const struct oms_core *c, uint64_t now_ns);
/* Typed mode (docs/semantics.md "Priority classes"): the application
 * messages of a burst that pass the session layer execute at its end, the
 * high class (Cancel, MassCancel, NewOrder flagged PRIORITY) first, each
 * class in arrival order; a Cancel or MassCancel takes back a queued
 * NewOrder it names before it ever runs.  Off (0) by default: rtc. */
void oms_core_set_typed(struct oms_core *c, int on);

/* The transmit area: tx_count() frames, frame i at tx_buf() + i *
 * OMS_TX_SLOT with length tx_lens()[i].  tx_clear() empties it once the
 * backend has sent them. */
const uint8_t *oms_core_tx_buf(const struct oms_core *c);
const uint16_t *oms_core_tx_lens(const struct oms_core *c);
uint32_t oms_core_tx_count(const struct oms_core *c);
void oms_core_tx_clear(struct oms_core *c);

const struct oms_stats *oms_core_stats(const struct oms_core *c);
int oms_core_order_find(const struct oms_core *c, uint32_t session_id,
			uint64_t cl_ord_id, struct oms_order_view *out);
/* The children of a split order still in the table, in the order they were
 * sent (each with its own venue, UserRefNum and quantities); how many. */
int oms_core_order_children(const struct oms_core *c, uint32_t session_id,
			    uint64_t cl_ord_id, struct oms_order_view *out, uint32_t max);
uint32_t oms_core_live_orders(const struct oms_core *c);

/* Latency measurement with the TSC: per application message, from the
 * start of its handling to its last output.  Off by default; the cycles
 * never reach frames or decisions. */
void oms_core_set_timing(struct oms_core *c, int on);
const struct lat_hist *oms_core_latency(const struct oms_core *c);
uint64_t oms_lat_bucket_low(uint32_t b);
uint32_t oms_lat_buckets(void);
/* The TSC, for calibrating cycle counts to time in tools. */
uint64_t oms_cycles(void);

const char *oms_drop_name(int reason);
const char *oms_event_name(int event);

#endif
