/* Pre-trade risk: the checks a NewOrder or Modify must pass before it goes
 * to a venue, and the exposure accounting they read (docs/semantics.md,
 * "Pre-trade risk").
 *
 * The interface is small on purpose: the tables the checks read (the
 * configuration generation's limits, the worker's accounting, each
 * session's token bucket), the verdict a check returns (0 or a reject
 * reason of enum sp_reject_reason, plus for a NewOrder the account and
 * position it resolved) and risk_update(), which keeps the accounting exact
 * after any change to an order.  Nothing is allocated per order; every
 * account is owned by the one worker that owns the core. */
#ifndef OMS_RISK_H
#define OMS_RISK_H

#include <stdint.h>

#include "oms_core.h"

#define RISK_NIL UINT32_MAX
#define RISK_TOKEN 1000000000ull /* one message, in the bucket's units */

struct order;

/* ---- Limits: one configuration generation, read-only once published ----
 *
 * A generation (struct risk_gen) holds every table the checks read that the
 * configuration sets.  The control plane builds a new one on reload
 * (config_gen.c) and publishes it by pointer swap; the worker picks it up at
 * the start of a burst, so a burst - and every order in it - is judged by
 * one generation.  Accounts, instruments and (account, symbol) positions
 * keep their slot across generations: a new generation starts as a copy of
 * the previous one's hash tables with every entry absent, and the
 * configuration marks what is present.  So the accounting below, indexed by
 * slot, never moves. */

struct risk_acct_limits { /* by account slot */
	uint32_t id;
	uint32_t max_order_qty;
	uint32_t max_open_orders;
	uint8_t present;
	uint8_t ord_types; /* bit (1 << ord_type) set: permitted */
	uint8_t tifs;      /* bit (1 << tif) set: permitted */
	uint8_t kill;      /* engaged by the configuration */
	int64_t max_order_notional; /* 8 decimals */
	int64_t credit_limit;       /* max open notional, 8 decimals */
};

/* Where a routing rule sends orders that name no venue: a venue (index +
 * 1), or the smart router (RISK_ROUTE_SOR) over every venue not in
 * `exclude` (a mask by venue index); venue 0: no rule. */
#define RISK_ROUTE_SOR 0xFFFFu
struct risk_route {
	uint64_t exclude;
	uint16_t venue;
};

struct risk_instrument { /* by instrument slot */
	int64_t tick;      /* 8 decimals, > 0 */
	int64_t ref_price; /* 8 decimals; 0: none */
	int64_t band_pct;  /* percent, 8 decimals; 0: no percent band */
	int64_t band_abs;  /* 8 decimals; 0: no absolute band */
	uint64_t venue_mask; /* by venue index (< 64) */
	uint32_t lot;      /* > 0 */
	struct risk_route route; /* for orders naming no venue */
	uint8_t any_venue; /* no venue list: every venue */
	uint8_t restricted;
	uint8_t halted;
	uint8_t present;
};

/* (account, instrument) -> position slot: the slot is the entry's index in
 * this open-addressing table, which later generations copy unchanged. */
struct risk_pos_limit {
	uint32_t acct1;       /* account slot + 1; 0: an empty entry */
	uint32_t instrument;
	int64_t max_position; /* shares, either way; < 0: absent */
	struct risk_route route; /* for (account, symbol) */
};

/* A session's message-rate limit: `cap` / RISK_TOKEN messages refilled at
 * `rate` messages per second (rate 0: none). */
struct risk_rate {
	uint64_t rate;
	uint64_t cap;
	/* the accounts the session may trade; n_accounts 0: any */
	uint32_t n_accounts;
	uint32_t accounts[OMS_SESSION_ACCOUNTS];
};

struct risk_gen {
	uint64_t number; /* configuration generation, 1 and up */
	uint32_t max_accounts, n_accounts; /* slots used, present or not */
	uint32_t account_mask;
	uint32_t max_positions, n_positions;
	uint32_t pos_mask;
	uint32_t max_instruments, n_instruments;
	uint32_t symbol_mask;
	uint32_t max_sessions;
	struct risk_route default_route;
	int64_t sor_cost_per_us; /* router: price units per microsecond of latency */
	int64_t sor_miss_penalty; /* router with a fill model: price units a share */
	struct oms_fill_model *fill_model; /* NULL: the rule router alone */
	uint32_t sor_split_max;  /* router: children of a split order (<= 1: no split) */
	uint32_t *account_ix; /* id hash -> slot + 1 */
	struct risk_acct_limits *accounts;
	uint64_t *symbols;    /* open addressing set of 8-byte symbols */
	uint32_t *symbol_ix;  /* by entry of `symbols`: instrument slot */
	struct risk_instrument *instruments;
	struct risk_pos_limit *positions; /* pos_mask + 1 entries */
	struct risk_route *account_route; /* by account slot */
	struct risk_rate *rates; /* by session index: throttle, permitted accounts */
	/* the configuration text it was built from, for the journal */
	char *source;
	uint32_t source_len;
};

/* ---- Accounting: owned and written by the worker, kept across reloads ---- */

struct risk_acct_state { /* by account slot */
	uint32_t open_orders;  /* live orders */
	uint8_t kill;          /* engaged by the operator */
	int64_t open_notional; /* sum of the live orders' reservations */
};

struct risk_pos_state { /* by position slot */
	int64_t position;  /* filled: bought - sold */
	int64_t open_buy;  /* reserved qty of live buy orders */
	int64_t open_sell; /* of live sell and sell-short orders */
};

struct risk_state {
	struct risk_acct_state *accounts;
	struct risk_pos_state *positions;
	uint32_t adopted_accounts; /* account slots the worker has seen */
	uint8_t kill_all; /* operator: every account, also those added later */
};

/* A session's token bucket (its rate is in the generation). */
struct risk_throttle {
	uint64_t tokens;
	uint64_t last_ns;
	uint8_t started; /* 0: the first message judged finds it full */
};

/* What a NewOrder asks for; its fields already passed the order checks. */
struct risk_request {
	uint32_t account;    /* as on the wire */
	uint32_t instrument; /* slot */
	uint32_t venue;      /* index */
	uint32_t qty;
	int64_t price;
	int64_t ref_price;   /* the band's reference: market data or config (0: none) */
	uint8_t side, ord_type, tif;
	uint8_t feed_halted; /* the venue's market data halts the symbol */
};

/* What a NewOrder that passed resolved to: store it in the order. */
struct risk_verdict {
	uint32_t acct; /* account slot */
	uint32_t pos;  /* position slot */
	int64_t px;    /* the price its exposure is valued at */
};

/* Lookups in a generation: slot or RISK_NIL. */
uint32_t risk_account_find(const struct risk_gen *g, uint32_t id);
uint32_t risk_position_find(const struct risk_gen *g, uint32_t acct,
			    uint32_t instrument);
uint32_t risk_symbol_find(const struct risk_gen *g, const char sym[8]);

int risk_state_init(struct risk_state *st, uint32_t max_accounts,
		    uint32_t pos_slots);
void risk_state_free(struct risk_state *st);

/* 0 or the reject reason; the throttle's token is taken when the check
 * gets that far (every check of a NewOrder or Modify does). */
uint16_t risk_check_new(const struct risk_gen *g, const struct risk_state *st,
			const struct risk_rate *rate, struct risk_throttle *th,
			uint64_t now_ns, const struct risk_request *r,
			struct risk_verdict *v);
uint16_t risk_check_modify(const struct risk_gen *g, const struct risk_state *st,
			   const struct risk_rate *rate, struct risk_throttle *th,
			   uint64_t now_ns, const struct order *o,
			   int64_t new_price, uint32_t new_qty,
			   int64_t ref_price, int feed_halted);
/* The order changed (entered, modified, replaced, filled, canceled,
 * rejected, ...): bring the accounting in line with it. */
void risk_update(struct risk_state *st, struct order *o);
/* An execution of q: the filled position moves (call risk_update too). */
void risk_fill(struct risk_state *st, const struct order *o, uint32_t q);

#endif
