/* Pre-trade risk checks and exposure accounting (risk.h; docs/semantics.md,
 * "Pre-trade risk").  Products of a price and a quantity are taken in 128
 * bits; the sums kept in 64 stay within the configured limits, which the
 * loader keeps below 2^63. */
#include <stdlib.h>
#include <string.h>

#include "orders.h"
#include "risk.h"

int risk_tables_init(struct risk_tables *t, uint32_t max_accounts,
		     uint32_t max_positions, uint32_t max_instruments)
{
	memset(t, 0, sizeof(*t));
	t->max_accounts = max_accounts ? max_accounts : 1024;
	t->max_positions = max_positions ? max_positions : 16384;
	t->account_mask = pow2_at_least(t->max_accounts * 2) - 1;
	t->pos_mask = pow2_at_least(t->max_positions * 2) - 1;
	t->accounts = alloc_lines(t->max_accounts * sizeof(*t->accounts));
	t->account_ix = calloc(t->account_mask + 1, sizeof(uint32_t));
	t->instruments = alloc_lines((max_instruments ? max_instruments : 1) *
				     sizeof(*t->instruments));
	t->positions = alloc_lines((size_t)(t->pos_mask + 1) * sizeof(*t->positions));
	if (!t->accounts || !t->account_ix || !t->instruments || !t->positions)
		return -1;
	memset(t->accounts, 0, t->max_accounts * sizeof(*t->accounts));
	memset(t->positions, 0, (size_t)(t->pos_mask + 1) * sizeof(*t->positions));
	return 0;
}

void risk_tables_free(struct risk_tables *t)
{
	free(t->accounts);
	free(t->account_ix);
	free(t->instruments);
	free(t->positions);
	memset(t, 0, sizeof(*t));
}

uint32_t risk_account_find(const struct risk_tables *t, uint32_t id)
{
	uint32_t i = id_hash(id) & t->account_mask;

	for (;;) {
		uint32_t a = t->account_ix[i];
		if (a == 0)
			return RISK_NIL;
		if (t->accounts[a - 1].id == id)
			return a - 1;
		i = (i + 1) & t->account_mask;
	}
}

static uint32_t pos_slot(const struct risk_tables *t, uint32_t acct,
			 uint32_t instrument)
{
	return id_hash((uint64_t)acct << 32 | instrument) & t->pos_mask;
}

uint32_t risk_position_find(const struct risk_tables *t, uint32_t acct,
			    uint32_t instrument)
{
	uint32_t i = pos_slot(t, acct, instrument);

	for (;;) {
		const struct risk_position *p = &t->positions[i];
		if (p->acct1 == 0)
			return RISK_NIL;
		if (p->acct1 == acct + 1 && p->instrument == instrument)
			return i;
		i = (i + 1) & t->pos_mask;
	}
}

int risk_add_account(struct risk_tables *t, const struct oms_account_config *a)
{
	if (t->n_accounts >= t->max_accounts ||
	    risk_account_find(t, a->id) != RISK_NIL ||
	    a->max_order_notional < 0 || a->credit_limit < 0)
		return -1;
	struct risk_account *ra = &t->accounts[t->n_accounts];
	memset(ra, 0, sizeof(*ra));
	ra->id = a->id;
	ra->max_order_qty = a->max_order_qty;
	ra->max_order_notional = a->max_order_notional;
	ra->max_open_orders = a->max_open_orders;
	ra->credit_limit = a->credit_limit;
	ra->ord_types = a->ord_types;
	ra->tifs = a->tifs;
	/* under the global kill switch, an account starts killed */
	ra->kill = a->kill != 0 || t->kill_all;
	uint32_t i = id_hash(a->id) & t->account_mask;
	while (t->account_ix[i] != 0)
		i = (i + 1) & t->account_mask;
	t->account_ix[i] = ++t->n_accounts;
	return 0;
}

int risk_add_position(struct risk_tables *t, uint32_t acct, uint32_t instrument,
		      int64_t max_position)
{
	if (t->n_positions >= t->max_positions || max_position < 0 ||
	    risk_position_find(t, acct, instrument) != RISK_NIL)
		return -1;
	uint32_t i = pos_slot(t, acct, instrument);
	while (t->positions[i].acct1 != 0)
		i = (i + 1) & t->pos_mask;
	memset(&t->positions[i], 0, sizeof(t->positions[i]));
	t->positions[i].acct1 = acct + 1;
	t->positions[i].instrument = instrument;
	t->positions[i].max_position = max_position;
	t->n_positions++;
	return 0;
}

void risk_throttle_init(struct risk_throttle *th, uint32_t per_s, uint32_t burst)
{
	th->rate = per_s;
	th->cap = (uint64_t)(burst ? burst : 1) * RISK_TOKEN;
	th->tokens = th->cap;
	th->last_ns = 0;
}

/* Refill for the time since the last message judged, then take a token. */
static int take_token(struct risk_throttle *th, uint64_t now)
{
	uint64_t elapsed = 0;

	if (th->rate == 0)
		return 1;
	if (now > th->last_ns) {
		elapsed = now - th->last_ns;
		th->last_ns = now;
	}
	/* past cap / rate ns the bucket is full whatever it held; below,
	 * rate * elapsed stays under cap + rate */
	if (elapsed > th->cap / th->rate)
		th->tokens = th->cap;
	else if ((th->tokens += th->rate * elapsed) > th->cap)
		th->tokens = th->cap;
	if (th->tokens < RISK_TOKEN)
		return 0;
	th->tokens -= RISK_TOKEN;
	return 1;
}

static int outside_band(const struct risk_instrument *in, int64_t price)
{
	if (!in->ref_price)
		return 0;
	__int128 d = (__int128)price - in->ref_price;
	if (d < 0)
		d = -d;
	if (in->band_abs && d > in->band_abs)
		return 1;
	/* |d| / ref > pct / 100, pct with 8 decimals */
	return in->band_pct &&
	       d * 100 * 100000000 > (__int128)in->ref_price * in->band_pct;
}

/* The checks on a price and quantity, common to NewOrder and Modify. */
static uint16_t check_price_qty(const struct risk_account *ac,
				const struct risk_instrument *in,
				uint32_t qty, int64_t price)
{
	if (qty > ac->max_order_qty)
		return SP_REJ_QTY_LIMIT;
	if (qty % in->lot)
		return SP_REJ_LOT_SIZE;
	if (price % in->tick)
		return SP_REJ_TICK_SIZE;
	if (outside_band(in, price))
		return SP_REJ_PRICE_BAND;
	if ((__int128)price * qty > ac->max_order_notional)
		return SP_REJ_NOTIONAL_LIMIT;
	return 0;
}

/* Would `dq` more shares on `side` take the worst case past the limit? */
static int beyond_position(const struct risk_position *p, uint8_t side, int64_t dq)
{
	if (side == SP_SIDE_BUY)
		return p->position + p->open_buy + dq > p->max_position;
	return p->open_sell - p->position + dq > p->max_position;
}

uint16_t risk_check_new(const struct risk_tables *t, struct risk_throttle *th,
			uint64_t now_ns, const struct risk_request *r,
			struct risk_verdict *v)
{
	if (!take_token(th, now_ns))
		return SP_REJ_THROTTLED;
	uint32_t a = risk_account_find(t, r->account);
	if (a == RISK_NIL)
		return SP_REJ_UNKNOWN_ACCOUNT;
	const struct risk_account *ac = &t->accounts[a];
	const struct risk_instrument *in = &t->instruments[r->instrument];
	if (ac->kill)
		return SP_REJ_KILL_SWITCH;
	if (in->halted)
		return SP_REJ_SYMBOL_HALTED;
	if (in->restricted)
		return SP_REJ_SYMBOL_RESTRICTED;
	if (!in->any_venue && (r->venue >= 64 || !(in->venue_mask >> r->venue & 1)))
		return SP_REJ_VENUE_NOT_ALLOWED;
	if (!(ac->ord_types >> r->ord_type & 1))
		return SP_REJ_ORD_TYPE_NOT_ALLOWED;
	if (!(ac->tifs >> r->tif & 1))
		return SP_REJ_TIF_NOT_ALLOWED;
	uint32_t p = risk_position_find(t, a, r->instrument);
	if (p == RISK_NIL)
		return SP_REJ_NO_POSITION_LIMIT;
	int64_t px = r->price;
	if (r->ord_type == SP_ORD_MARKET) {
		/* judged at the reference price; none: cannot be judged */
		if (!in->ref_price)
			return SP_REJ_PRICE_BAND;
		px = in->ref_price;
	}
	uint16_t rej = check_price_qty(ac, in, r->qty, px);
	if (rej)
		return rej;
	if (ac->open_orders >= ac->max_open_orders)
		return SP_REJ_OPEN_ORDERS_LIMIT;
	if ((__int128)ac->open_notional + (__int128)px * r->qty > ac->credit_limit)
		return SP_REJ_CREDIT_LIMIT;
	if (beyond_position(&t->positions[p], r->side, r->qty))
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

uint16_t risk_check_modify(const struct risk_tables *t, struct risk_throttle *th,
			   uint64_t now_ns, const struct order *o,
			   int64_t new_price, uint32_t new_qty)
{
	if (!take_token(th, now_ns))
		return SP_REJ_THROTTLED;
	const struct risk_account *ac = &t->accounts[o->risk_acct];
	const struct risk_instrument *in = &t->instruments[o->instrument];
	if (ac->kill)
		return SP_REJ_KILL_SWITCH;
	if (in->halted)
		return SP_REJ_SYMBOL_HALTED;
	if (in->restricted)
		return SP_REJ_SYMBOL_RESTRICTED;
	uint16_t rej = check_price_qty(ac, in, new_qty, new_price);
	if (rej)
		return rej;
	/* the reservation it would hold once PendingReplace: new_qty > cum
	 * (checked before), the order is not pending (checked before) */
	uint32_t nq = new_qty - o->cum_qty;
	__int128 nn = (__int128)new_price * nq;
	__int128 dn = nn > o->res_notional ? nn - o->res_notional : 0;
	int64_t dq = nq > o->res_qty ? (int64_t)nq - o->res_qty : 0;
	if ((__int128)ac->open_notional + dn > ac->credit_limit)
		return SP_REJ_CREDIT_LIMIT;
	if (beyond_position(&t->positions[o->risk_pos], o->side, dq))
		return SP_REJ_POSITION_LIMIT;
	return 0;
}

void risk_update(struct risk_tables *t, struct order *o)
{
	uint32_t q;
	int64_t n;
	uint8_t live = !state_is_terminal(o->state);
	struct risk_account *ac = &t->accounts[o->risk_acct];
	struct risk_position *p = &t->positions[o->risk_pos];

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

void risk_fill(struct risk_tables *t, const struct order *o, uint32_t q)
{
	struct risk_position *p = &t->positions[o->risk_pos];

	p->position += o->side == SP_SIDE_BUY ? (int64_t)q : -(int64_t)q;
}
