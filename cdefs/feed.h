/* The market-data feed handler: one feed per venue takes that venue's
 * MoldUDP64 packets of ITCH 5.0 messages (cdefs/itch_wire.h), keeps an
 * order-level book for each subscribed symbol and publishes each book's top
 * of book for worker cores to read without locks (docs/market-data.md).
 *
 * One writer: the lcore (or worker, between its bursts) that calls
 * oms_feed_process().  Readers on other cores use oms_tob_read() and
 * oms_feed_halted() only.  Nothing allocates after oms_feed_create(); like
 * the core, the feed reads no clock: each call brings now_ns.
 *
 * Included from oms_core.h, so cffi binds it too. */
#ifndef OMS_FEED_H
#define OMS_FEED_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "itch_wire.h"

/* Every frame or message the feed does not apply lands in exactly one of
 * these counters. */
#define OMS_FEED_DROP_LIST(X)                                                 \
	X(NET) X(WRONG_GROUP) X(WRONG_PORT) X(WRONG_SOURCE)                   \
	X(MOLD_TRUNCATED) X(MOLD_BAD_SEQ) X(MOLD_BAD_BLOCK) X(DUPLICATE)      \
	X(AHEAD) X(ITCH_BAD_LENGTH) X(UNKNOWN_REF) X(DUP_REF) X(BAD_SIDE)     \
	X(BAD_SHARES) X(OVER_EXECUTE) X(ORDERS_FULL) X(LEVELS_FULL) X(TX_FULL)

/* What happened, for operators and tests. */
#define OMS_FEED_EVENT_LIST(X)                                                \
	X(FRAMES_IN) X(PACKETS) X(MSGS_APPLIED) X(HEARTBEATS)                 \
	X(END_OF_SESSION) X(SESSIONS) X(GAPS) X(GAP_MSGS) X(REQUESTS)         \
	X(RECOVERIES) X(QUIET) X(SKIPPED_TYPES) X(UNSUBSCRIBED)               \
	X(DIRECTORY) X(SYSTEM_EVENTS) X(TRADING_ACTIONS) X(REG_SHO)           \
	X(ADDS) X(EXECUTIONS) X(CANCELS) X(DELETES) X(REPLACES) X(TRADES)     \
	X(CROSSES) X(BROKEN_TRADES) X(TOB_UPDATES)

#define OMS_FEED_ENUM_DROP(n) OMS_FEED_DROP_##n,
#define OMS_FEED_ENUM_EVENT(n) OMS_FEED_EV_##n,
enum oms_feed_drop { OMS_FEED_DROP_LIST(OMS_FEED_ENUM_DROP) OMS_FEED_DROP_MAX };
enum oms_feed_event { OMS_FEED_EVENT_LIST(OMS_FEED_ENUM_EVENT) OMS_FEED_EV_MAX };

/* Why a book is stale (oms_tob_view.stale is a mask of these; 0: sound). */
enum oms_feed_stale {
	OMS_STALE_NO_SESSION = 1, /* nothing received yet */
	OMS_STALE_GAP = 2,        /* messages missing: re-requested, or lost
				   * until the next session */
	OMS_STALE_QUIET = 4,      /* nothing for stale_after_ns */
	OMS_STALE_END = 8,        /* the session ended (0xFFFF) */
	OMS_STALE_BOOK_FULL = 16, /* this book outgrew its tables */
	OMS_STALE_LATE = 32,      /* subscribed mid-session: orders added
				   * before are missing */
	OMS_STALE_UNSUBSCRIBED = 64, /* its subscription was removed (live
				      * reload): nothing arrives any more */
};

struct oms_feed_stats {
	uint64_t drop[OMS_FEED_DROP_MAX];
	uint64_t event[OMS_FEED_EV_MAX];
	uint64_t net_drop[64]; /* NET drops by the frame parser's OMS_DROP_* */
	uint64_t msgs_by_type[256];
};

struct oms_feed_config {
	uint16_t venue;
	uint8_t mac[6];          /* ours: the source of re-requests */
	uint32_t ip;             /* ours, host byte order */
	uint16_t port;           /* ours: retransmissions come back here */
	uint32_t group_ip;       /* the feed's multicast group */
	uint16_t group_port;
	uint32_t source_ip;      /* 0: any source (ASM), else SSM's source */
	uint32_t retrans_ip;     /* re-request server; 0: none */
	uint16_t retrans_port;
	uint8_t retrans_mac[6];  /* its next hop */
	uint64_t stale_after_ns; /* quiet this long: stale (0: never) */
	uint64_t retransmit_ns;  /* re-send an unanswered request (0: 100 ms) */
	uint16_t max_request;    /* messages asked per request (0: 512) */
	uint32_t max_symbols;    /* symbol indices are below this */
	uint32_t max_orders;     /* live orders over all books */
	uint32_t max_levels;     /* price levels per side of one book */
	uint32_t tx_capacity;    /* request frames between tx_clear()s (0: 8) */
	uint8_t checksum_offload; /* OMS_CSUM_RX_VERIFIED: skip sums */
};

/* A book's top of book, published under a sequence lock: two cache lines,
 * written by the feed only, read by any core with oms_tob_read().  Laid
 * out without implicit padding so cffi and C agree on it. */
struct oms_tob {
	uint32_t seq;          /* odd while the feed writes */
	uint8_t stale;         /* OMS_STALE_* mask, 0: sound */
	uint8_t halted;        /* trading state other than 'T' */
	uint8_t trading_state; /* ITCH 'H' 'P' 'Q' 'T', 0: none seen */
	uint8_t reg_sho;       /* ITCH '0' '1' '2', 0: none seen */
	uint32_t bid_qty;      /* 0: no bid */
	uint32_t ask_qty;      /* 0: no ask */
	uint32_t last_qty;     /* last printable trade, 0: none */
	uint32_t reserved_;
	int64_t bid_px;        /* 8 decimals */
	int64_t ask_px;
	int64_t last_px;
	uint64_t updates;      /* publications of this entry */
	uint64_t last_ns;      /* now_ns of the latest */
	uint64_t mold_seq;     /* sequence number of the message behind it */
	uint64_t itch_ts;      /* that message's ITCH timestamp */
	uint8_t pad_[48];
};

/* A consistent copy of one oms_tob. */
struct oms_tob_view {
	uint8_t stale;
	uint8_t halted;
	uint8_t trading_state;
	uint8_t reg_sho;
	uint32_t bid_qty;
	uint32_t ask_qty;
	uint32_t last_qty;
	int64_t bid_px;
	int64_t ask_px;
	int64_t last_px;
	uint64_t updates;
	uint64_t last_ns;
	uint64_t mold_seq;
	uint64_t itch_ts;
};

/* One price level, for tools and tests (not the hot path). */
struct oms_level_view {
	int64_t px;
	uint32_t qty;
	uint32_t orders;
};

struct oms_feed;

/* NULL when a size is 0 or memory is short. */
struct oms_feed *oms_feed_create(const struct oms_feed_config *cfg);
void oms_feed_destroy(struct oms_feed *f);
/* A book for `symbol` (8 bytes, space padded) published at `symbol_index`
 * (the core's instrument index, below max_symbols).  Subscribed mid-session
 * (a live reload), the book follows the feed from here on but stays stale
 * (OMS_STALE_LATE) until the next session: what was added before is
 * missing.  0, or -1: index out of range or taken, symbol already there,
 * no room. */
int oms_feed_subscribe(struct oms_feed *f, const char symbol[8], uint32_t symbol_index);

/* The writer marks every book of a feed whose subscription was removed
 * (on = 1) stale, or clears that when it is subscribed again (then a gap
 * shows what it missed). */
void oms_feed_set_unsubscribed(struct oms_feed *f, int on);

/* Run the feed's timers at now_ns (quiet, re-requests), then take `n`
 * frames classified as this feed's market data (the group's multicast and
 * unicast retransmissions to cfg.ip:port).  Returns the number of frames
 * waiting in the transmit area (re-requests). */
uint32_t oms_feed_process(struct oms_feed *f, const uint8_t *const *frames,
			  const uint16_t *lens, uint32_t n, uint64_t now_ns);
/* The same for one MoldUDP64 packet (a UDP payload), for replay tools. */
uint32_t oms_feed_process_packet(struct oms_feed *f, const uint8_t *payload,
				 uint32_t len, uint64_t now_ns);
/* When a timer is next due (UINT64_MAX: none). */
uint64_t oms_feed_next_deadline(const struct oms_feed *f);

const uint8_t *oms_feed_tx_buf(const struct oms_feed *f); /* OMS_TX_SLOT apart */
const uint16_t *oms_feed_tx_lens(const struct oms_feed *f);
uint32_t oms_feed_tx_count(const struct oms_feed *f);
void oms_feed_tx_clear(struct oms_feed *f);

/* Readers (any core, no locks). */
const struct oms_tob *oms_feed_tob(const struct oms_feed *f, uint32_t symbol_index);
/* Copies a consistent top of book; returns how many times it retried. */
uint32_t oms_tob_read(const struct oms_tob *t, struct oms_tob_view *out);
/* 1 when the venue halted, paused or quotes only the symbol (for the risk
 * checks); 0 when trading or nothing known, or not subscribed. */
int oms_feed_halted(const struct oms_feed *f, uint32_t symbol_index);

/* The writer's side, for tools and tests. */
const struct oms_feed_stats *oms_feed_stats(const struct oms_feed *f);
uint32_t oms_feed_stale(const struct oms_feed *f); /* the feed-wide mask */
uint64_t oms_feed_expected_seq(const struct oms_feed *f);
uint32_t oms_feed_live_orders(const struct oms_feed *f);
/* Levels of one side ('B' or 'S'), best first; returns how many there
 * are, and fills `out` only when `max` has room for them all. */
uint32_t oms_feed_levels(const struct oms_feed *f, uint32_t symbol_index, uint8_t side,
			 struct oms_level_view *out, uint32_t max);
const char *oms_feed_drop_name(int reason);
const char *oms_feed_event_name(int event);

#endif
