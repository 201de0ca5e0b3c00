/* Pre-trade risk: the checks a NewOrder or Modify must pass before it goes
 * to a venue, and the exposure accounting they read (docs/semantics.md,
 * "Pre-trade risk").
 *
 * The interface is small on purpose: the tables the checks read (accounts,
 * instruments, per-(account, instrument) positions, each session's token
 * bucket), the verdict a check returns (0 or a reject reason of
 * enum sp_reject_reason, plus for a NewOrder the account and position it
 * resolved) and risk_update(), which keeps the accounting exact after any
 * change to an order.  Everything is allocated when the core is created;
 * every account is owned by the one worker that owns the core. */
#ifndef OMS_RISK_H
#define OMS_RISK_H

#include <stdint.h>

#include "oms_core.h"

#define RISK_NIL UINT32_MAX
#define RISK_TOKEN 1000000000ull /* one message, in the bucket's units */

struct order;

struct risk_account {
	uint32_t id;
	uint32_t max_order_qty;
	uint32_t max_open_orders;
	uint32_t open_orders;       /* live orders */
	int64_t max_order_notional; /* 8 decimals */
	int64_t credit_limit;       /* max open notional, 8 decimals */
	int64_t open_notional;      /* sum of the live orders' reservations */
	uint8_t ord_types;          /* bit (1 << ord_type) set: permitted */
	uint8_t tifs;               /* bit (1 << tif) set: permitted */
	uint8_t kill;
};

struct risk_instrument {
	int64_t tick;      /* 8 decimals, > 0 */
	int64_t ref_price; /* 8 decimals; 0: none */
	int64_t band_pct;  /* percent, 8 decimals; 0: no percent band */
	int64_t band_abs;  /* 8 decimals; 0: no absolute band */
	uint64_t venue_mask; /* by venue index (< 64) */
	uint32_t lot;      /* > 0 */
	uint8_t any_venue; /* no venue list: every venue */
	uint8_t restricted;
	uint8_t halted;
};

/* Held in the open-addressing table itself, so that a lookup and the
 * figures it leads to share a cache line. */
struct risk_position {
	uint32_t acct1;       /* account index + 1; 0: an empty slot */
	uint32_t instrument;
	int64_t max_position; /* shares, either way */
	int64_t position;     /* filled: bought - sold */
	int64_t open_buy;     /* reserved qty of live buy orders */
	int64_t open_sell;    /* of live sell and sell-short orders */
};

/* A session's message-rate limit: a token bucket of `cap` / RISK_TOKEN
 * messages refilled at `rate` messages per second, on the bursts' now_ns. */
struct risk_throttle {
	uint64_t rate; /* 0: no throttle */
	uint64_t cap;
	uint64_t tokens;
	uint64_t last_ns;
};

struct risk_tables {
	struct risk_account *accounts;
	uint32_t n_accounts, max_accounts;
	uint32_t *account_ix; /* id hash -> index + 1 */
	uint32_t account_mask;
	struct risk_instrument *instruments; /* by instrument index */
	struct risk_position *positions; /* open addressing, pos_mask + 1 slots */
	uint32_t n_positions, max_positions;
	uint32_t pos_mask;
	uint8_t kill_all; /* every account killed: so is an account added */
};

/* What a NewOrder asks for; its fields already passed the order checks. */
struct risk_request {
	uint32_t account;    /* as on the wire */
	uint32_t instrument; /* index */
	uint32_t venue;      /* index */
	uint32_t qty;
	int64_t price;
	uint8_t side, ord_type, tif;
};

/* What a NewOrder that passed resolved to: store it in the order. */
struct risk_verdict {
	uint32_t acct; /* account index */
	uint32_t pos;  /* position index */
	int64_t px;    /* the price its exposure is valued at */
};

int risk_tables_init(struct risk_tables *t, uint32_t max_accounts,
		     uint32_t max_positions, uint32_t max_instruments);
void risk_tables_free(struct risk_tables *t);
uint32_t risk_account_find(const struct risk_tables *t, uint32_t id);
uint32_t risk_position_find(const struct risk_tables *t, uint32_t acct,
			    uint32_t instrument);
int risk_add_account(struct risk_tables *t, const struct oms_account_config *a);
int risk_add_position(struct risk_tables *t, uint32_t acct, uint32_t instrument,
		      int64_t max_position);
void risk_throttle_init(struct risk_throttle *th, uint32_t per_s, uint32_t burst);

/* 0 or the reject reason; the throttle's token is taken when the check
 * gets that far (every check of a NewOrder or Modify does). */
uint16_t risk_check_new(const struct risk_tables *t, struct risk_throttle *th,
			uint64_t now_ns, const struct risk_request *r,
			struct risk_verdict *v);
uint16_t risk_check_modify(const struct risk_tables *t, struct risk_throttle *th,
			   uint64_t now_ns, const struct order *o,
			   int64_t new_price, uint32_t new_qty);
/* The order changed (entered, modified, replaced, filled, canceled,
 * rejected, ...): bring the accounting in line with it. */
void risk_update(struct risk_tables *t, struct order *o);
/* An execution of q: the filled position moves (call risk_update too). */
void risk_fill(struct risk_tables *t, const struct order *o, uint32_t q);

#endif
