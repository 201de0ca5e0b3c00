/* Pre-trade risk checks and exposure accounting (risk.h; docs/semantics.md,
 * "Pre-trade risk").  Products of a price and a quantity are taken in 128
 * bits; the sums kept in 64 stay within the configured limits, which the
 * loader keeps below 2^63. */
#include <stdlib.h>
#include <string.h>

#include "orders.h"
#include "risk.h"

int risk_state_init(struct risk_state *st, uint32_t max_accounts,
		    uint32_t pos_slots)
{
	memset(st, 0, sizeof(*st));
	st->accounts = alloc_lines((size_t)max_accounts * sizeof(*st->accounts));
	st->positions = alloc_lines((size_t)pos_slots * sizeof(*st->positions));
	if (!st->accounts || !st->positions)
		return -1;
	memset(st->accounts, 0, (size_t)max_accounts * sizeof(*st->accounts));
	memset(st->positions, 0, (size_t)pos_slots * sizeof(*st->positions));
	return 0;
}

void risk_state_free(struct risk_state *st)
{
	free(st->accounts);
	free(st->positions);
	memset(st, 0, sizeof(*st));
}

uint32_t risk_account_find(const struct risk_gen *g, uint32_t id)
{
	uint32_t i = id_hash(id) & g->account_mask;

	for (;;) {
		uint32_t a = g->account_ix[i];
		if (a == 0)
			return RISK_NIL;
		if (g->accounts[a - 1].id == id)
			return g->accounts[a - 1].present ? a - 1 : RISK_NIL;
		i = (i + 1) & g->account_mask;
	}
}

static uint32_t pos_entry(const struct risk_gen *g, uint32_t acct,
			  uint32_t instrument)
{
	return id_hash((uint64_t)acct << 32 | instrument) & g->pos_mask;
}

uint32_t risk_position_find(const struct risk_gen *g, uint32_t acct,
			    uint32_t instrument)
{
	uint32_t i = pos_entry(g, acct, instrument);

	for (;;) {
		const struct risk_pos_limit *p = &g->positions[i];
		if (p->acct1 == 0)
			return RISK_NIL;
		if (p->acct1 == acct + 1 && p->instrument == instrument)
			return i;
		i = (i + 1) & g->pos_mask;
	}
}

uint32_t risk_symbol_find(const struct risk_gen *g, const char sym[8])
{
	uint64_t k;

	memcpy(&k, sym, 8);
	if (k == 0)
		return RISK_NIL;
	for (uint32_t i = id_hash(k) & g->symbol_mask;; i = (i + 1) & g->symbol_mask) {
		uint64_t s = g->symbols[i];
		if (s == 0)
			return RISK_NIL;
		if (s == k) {
			uint32_t ix = g->symbol_ix[i];
			return g->instruments[ix].present ? ix : RISK_NIL;
		}
	}
}

/* Refill for the time since the last message judged, then take a token. */
static int take_token(const struct risk_rate *r, struct risk_throttle *th,
		      uint64_t now)
{
	uint64_t elapsed = 0;

	if (r->rate == 0)
		return 1;
	if (!th->started) {
		th->started = 1;
		th->tokens = r->cap;
	}
	if (now > th->last_ns) {
		elapsed = now - th->last_ns;
		th->last_ns = now;
	}
	/* past cap / rate ns the bucket is full whatever it held; below,
	 * rate * elapsed stays under cap + rate.  A reload may have lowered
	 * the cap: the bucket never holds more than the current one. */
	if (elapsed > r->cap / r->rate)
		th->tokens = r->cap;
	else if ((th->tokens += r->rate * elapsed) > r->cap)
		th->tokens = r->cap;
	if (th->tokens < RISK_TOKEN)
		return 0;
	th->tokens -= RISK_TOKEN;
	return 1;
}

/* `ref`: the market data's reference while fresh, else the configuration's
 * (docs/semantics.md "Reference prices"); 0: none, no band. */
static int outside_band(const struct risk_instrument *in, int64_t ref, int64_t price)
{
	if (!ref)
		return 0;
	__int128 d = (__int128)price - ref;
	if (d < 0)
		d = -d;
	if (in->band_abs && d > in->band_abs)
		return 1;
	/* |d| / ref > pct / 100, pct with 8 decimals */
	return in->band_pct &&
	       d * 100 * 100000000 > (__int128)ref * in->band_pct;
}

/* The checks on a price and quantity, common to NewOrder and Modify. */
static uint16_t check_price_qty(const struct risk_acct_limits *ac,
				const struct risk_instrument *in, int64_t ref,
				uint32_t qty, int64_t price)
{
	if (qty > ac->max_order_qty)
		return SP_REJ_QTY_LIMIT;
	if (qty % in->lot)
		return SP_REJ_LOT_SIZE;
	if (price % in->tick)
		return SP_REJ_TICK_SIZE;
	if (outside_band(in, ref, price))
		return SP_REJ_PRICE_BAND;
	if ((__int128)price * qty > ac->max_order_notional)
		return SP_REJ_NOTIONAL_LIMIT;
	return 0;
}

/* Would `dq` more shares on `side` take the worst case past the limit? */
static int beyond_position(const struct risk_pos_state *p, int64_t max_position,
			   uint8_t side, int64_t dq)
{
	if (side == SP_SIDE_BUY)
		return p->position + p->open_buy + dq > max_position;
	return p->open_sell - p->position + dq > max_position;
}

static int killed(const struct risk_gen *g, const struct risk_state *st, uint32_t a)
{
	return g->accounts[a].kill | st->accounts[a].kill;
}

uint16_t risk_check_new(const struct risk_gen *g, const struct risk_state *st,
			const struct risk_rate *rate, struct risk_throttle *th,
			uint64_t now_ns, const struct risk_request *r,
			struct risk_verdict *v)
{
	if (!take_token(rate, th, now_ns))
		return SP_REJ_THROTTLED;
	uint32_t a = risk_account_find(g, r->account);
	if (a == RISK_NIL)
		return SP_REJ_UNKNOWN_ACCOUNT;
	if (rate->n_accounts) {
		uint32_t k = 0;
		while (k < rate->n_accounts && rate->accounts[k] != r->account)
			k++;
		if (k == rate->n_accounts)
			return SP_REJ_ACCOUNT_NOT_PERMITTED;
	}
	const struct risk_acct_limits *ac = &g->accounts[a];
	const struct risk_instrument *in = &g->instruments[r->instrument];
	if (killed(g, st, a))
		return SP_REJ_KILL_SWITCH;
	if (in->halted || r->feed_halted)
		return SP_REJ_SYMBOL_HALTED;
	if (in->restricted)
		return SP_REJ_SYMBOL_RESTRICTED;
	if (!in->any_venue && (r->venue >= 64 || !(in->venue_mask >> r->venue & 1)))
		return SP_REJ_VENUE_NOT_ALLOWED;
	if (!(ac->ord_types >> r->ord_type & 1))
		return SP_REJ_ORD_TYPE_NOT_ALLOWED;
	if (!(ac->tifs >> r->tif & 1))
		return SP_REJ_TIF_NOT_ALLOWED;
	uint32_t p = risk_position_find(g, a, r->instrument);
	if (p == RISK_NIL || g->positions[p].max_position < 0)
		return SP_REJ_NO_POSITION_LIMIT;
	int64_t px = r->price;
	if (r->ord_type == SP_ORD_MARKET) {
		/* judged at the reference price; none: cannot be judged */
		if (!r->ref_price)
			return SP_REJ_PRICE_BAND;
		px = r->ref_price;
	}
	uint16_t rej = check_price_qty(ac, in, r->ref_price, r->qty, px);
	if (rej)
		return rej;
	const struct risk_acct_state *as = &st->accounts[a];
	if (as->open_orders >= ac->max_open_orders)
		return SP_REJ_OPEN_ORDERS_LIMIT;
	if ((__int128)as->open_notional + (__int128)px * r->qty > ac->credit_limit)
		return SP_REJ_CREDIT_LIMIT;
	if (beyond_position(&st->positions[p], g->positions[p].max_position,
			    r->side, r->qty))
		return SP_REJ_POSITION_LIMIT;
	v->acct = a;
	v->pos = p;
	v->px = px;
	return 0;
}

/* What a live order holds against its limits: its leaves at its price;
 * while a replace is pending, the larger of that and the new leaves at
 * the new price, for quantity and notional each. */
static void reservation(const struct order *o, uint32_t *q, int64_t *n)
{
	if (state_is_terminal(o->state)) {
		*q = 0;
		*n = 0;
		return;
	}
	int64_t px = o->ord_type == SP_ORD_MARKET ? o->risk_px : o->price;
	*q = o->leaves_qty;
	*n = px * o->leaves_qty;
	if (o->state == OMS_ST_PENDING_REPLACE) {
		uint32_t nq = o->pending_qty > o->cum_qty ? o->pending_qty - o->cum_qty : 0;
		int64_t nn = o->pending_price * nq;
		if (nq > *q)
			*q = nq;
		if (nn > *n)
			*n = nn;
	}
}

uint16_t risk_check_modify(const struct risk_gen *g, const struct risk_state *st,
			   const struct risk_rate *rate, struct risk_throttle *th,
			   uint64_t now_ns, const struct order *o,
			   int64_t new_price, uint32_t new_qty,
			   int64_t ref_price, int feed_halted)
{
	if (!take_token(rate, th, now_ns))
		return SP_REJ_THROTTLED;
	/* a reload may have removed what the order was entered under */
	const struct risk_acct_limits *ac = &g->accounts[o->risk_acct];
	const struct risk_instrument *in = &g->instruments[o->instrument];
	const struct risk_pos_limit *pl = &g->positions[o->risk_pos];
	if (!ac->present)
		return SP_REJ_UNKNOWN_ACCOUNT;
	if (killed(g, st, o->risk_acct))
		return SP_REJ_KILL_SWITCH;
	if (!in->present)
		return SP_REJ_UNKNOWN_SYMBOL;
	if (in->halted || feed_halted)
		return SP_REJ_SYMBOL_HALTED;
	if (in->restricted)
		return SP_REJ_SYMBOL_RESTRICTED;
	if (pl->max_position < 0)
		return SP_REJ_NO_POSITION_LIMIT;
	uint16_t rej = check_price_qty(ac, in, ref_price, new_qty, new_price);
	if (rej)
		return rej;
	/* the reservation it would hold once PendingReplace: new_qty > cum
	 * (checked before), the order is not pending (checked before) */
	uint32_t nq = new_qty - o->cum_qty;
	__int128 nn = (__int128)new_price * nq;
	__int128 dn = nn > o->res_notional ? nn - o->res_notional : 0;
	int64_t dq = nq > o->res_qty ? (int64_t)nq - o->res_qty : 0;
	if ((__int128)st->accounts[o->risk_acct].open_notional + dn > ac->credit_limit)
		return SP_REJ_CREDIT_LIMIT;
	if (beyond_position(&st->positions[o->risk_pos], pl->max_position, o->side, dq))
		return SP_REJ_POSITION_LIMIT;
	return 0;
}

void risk_update(struct risk_state *st, struct order *o)
{
	uint32_t q;
	int64_t n;
	uint8_t live = !state_is_terminal(o->state);
	struct risk_acct_state *ac = &st->accounts[o->risk_acct];
	struct risk_pos_state *p = &st->positions[o->risk_pos];

	reservation(o, &q, &n);
	ac->open_orders += (uint32_t)live - o->res_live;
	ac->open_notional += n - o->res_notional;
	if (o->side == SP_SIDE_BUY)
		p->open_buy += (int64_t)q - o->res_qty;
	else
		p->open_sell += (int64_t)q - o->res_qty;
	o->res_live = live;
	o->res_qty = q;
	o->res_notional = n;
}

void risk_fill(struct risk_state *st, const struct order *o, uint32_t q)
{
	struct risk_pos_state *p = &st->positions[o->risk_pos];

	p->position += o->side == SP_SIDE_BUY ? (int64_t)q : -(int64_t)q;
}
