/* Configuration generations (risk.h, docs/semantics.md "Configuration
 * generations"): the control plane builds one from the YAML, off the hot
 * path, and publishes it with oms_core_publish(); the worker switches to it
 * at its next burst.  A generation copies its predecessor's hash tables
 * (keys and slots only: everything starts absent) so that every account,
 * instrument and (account, symbol) keeps its slot, and the worker's
 * accounting, indexed by slot, carries over untouched. */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "pipeline.h"

static void *copy_or_zero(const void *src, size_t size)
{
	void *p = alloc_lines(size ? size : 64);

	if (!p)
		return NULL;
	if (src)
		memcpy(p, src, size);
	else
		memset(p, 0, size);
	return p;
}

void oms_gen_free(struct risk_gen *g)
{
	if (!g)
		return;
	free(g->account_ix);
	free(g->accounts);
	free(g->symbols);
	free(g->symbol_ix);
	free(g->instruments);
	free(g->positions);
	free(g->account_route);
	free(g->rates);
	free(g->source);
	free(g->fill_model);
	free(g);
}

struct risk_gen *oms_gen_create(const struct oms_core *c, const struct risk_gen *prev)
{
	const struct oms_core_config *cfg = &c->cfg;
	struct risk_gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->number = prev ? prev->number + 1 : 1;
	g->max_accounts = cfg->max_accounts;
	g->max_positions = cfg->max_positions;
	g->max_instruments = cfg->max_instruments;
	g->max_sessions = cfg->max_sessions;
	g->account_mask = pow2_at_least(g->max_accounts * 2) - 1;
	g->pos_mask = pow2_at_least(g->max_positions * 2) - 1;
	g->symbol_mask = pow2_at_least(g->max_instruments * 2) - 1;
	if (prev) {
		g->n_accounts = prev->n_accounts;
		g->n_positions = prev->n_positions;
		g->n_instruments = prev->n_instruments;
	}
	g->account_ix = copy_or_zero(prev ? prev->account_ix : NULL,
				     (g->account_mask + 1) * sizeof(uint32_t));
	g->accounts = copy_or_zero(NULL, g->max_accounts * sizeof(*g->accounts));
	g->symbols = copy_or_zero(prev ? prev->symbols : NULL,
				  (g->symbol_mask + 1) * sizeof(uint64_t));
	g->symbol_ix = copy_or_zero(prev ? prev->symbol_ix : NULL,
				    (g->symbol_mask + 1) * sizeof(uint32_t));
	g->instruments = copy_or_zero(NULL, g->max_instruments * sizeof(*g->instruments));
	g->positions = copy_or_zero(prev ? prev->positions : NULL,
				    (size_t)(g->pos_mask + 1) * sizeof(*g->positions));
	g->account_route = copy_or_zero(NULL, g->max_accounts * sizeof(*g->account_route));
	g->rates = copy_or_zero(NULL, g->max_sessions * sizeof(*g->rates));
	if (!g->account_ix || !g->accounts || !g->symbols || !g->symbol_ix ||
	    !g->instruments || !g->positions || !g->account_route || !g->rates) {
		oms_gen_free(g);
		return NULL;
	}
	/* the keys stay, the values are this generation's to set */
	if (prev)
		for (uint32_t a = 0; a < g->n_accounts; a++)
			g->accounts[a].id = prev->accounts[a].id;
	for (uint32_t i = 0; i <= g->pos_mask; i++) {
		g->positions[i].max_position = -1;
		g->positions[i].route = (struct risk_route){0, 0};
	}
	for (uint32_t s = 0; s < g->max_sessions; s++)
		g->rates[s].cap = RISK_TOKEN;
	return g;
}

uint64_t oms_gen_number(const struct risk_gen *g)
{
	return g->number;
}

/* The slot of `id`, registered if new; RISK_NIL when the table is full. */
static uint32_t account_slot(struct risk_gen *g, uint32_t id)
{
	uint32_t i = id_hash(id) & g->account_mask;

	for (;; i = (i + 1) & g->account_mask) {
		uint32_t a = g->account_ix[i];
		if (a == 0)
			break;
		if (g->accounts[a - 1].id == id)
			return a - 1;
	}
	if (g->n_accounts >= g->max_accounts)
		return RISK_NIL;
	g->accounts[g->n_accounts].id = id;
	g->account_ix[i] = ++g->n_accounts;
	return g->n_accounts - 1;
}

static uint32_t symbol_slot(struct risk_gen *g, const char sym[8])
{
	uint64_t k;

	memcpy(&k, sym, 8);
	uint32_t i = id_hash(k) & g->symbol_mask;
	for (;; i = (i + 1) & g->symbol_mask) {
		if (g->symbols[i] == 0)
			break;
		if (g->symbols[i] == k)
			return g->symbol_ix[i];
	}
	if (g->n_instruments >= g->max_instruments)
		return RISK_NIL;
	g->symbols[i] = k;
	g->symbol_ix[i] = g->n_instruments++;
	return g->symbol_ix[i];
}

static uint32_t position_slot(struct risk_gen *g, uint32_t acct, uint32_t ins)
{
	uint32_t i = risk_position_find(g, acct, ins);

	if (i != RISK_NIL)
		return i;
	if (g->n_positions >= g->max_positions)
		return RISK_NIL;
	i = id_hash((uint64_t)acct << 32 | ins) & g->pos_mask;
	while (g->positions[i].acct1 != 0)
		i = (i + 1) & g->pos_mask;
	g->positions[i].acct1 = acct + 1;
	g->positions[i].instrument = ins;
	g->n_positions++;
	return i;
}

static uint32_t present_symbol(const struct risk_gen *g, const char sym[8])
{
	return risk_symbol_find(g, sym);
}

int oms_gen_add_instrument(struct risk_gen *g, const struct oms_core *c,
			   const struct oms_instrument_config *in)
{
	uint64_t k;

	memcpy(&k, in->symbol, 8);
	if (k == 0 || present_symbol(g, in->symbol) != RISK_NIL ||
	    in->tick_size < 0 || in->reference_price < 0 || in->band_pct < 0 ||
	    in->band_abs < 0 || in->n_venues > 16)
		return -1;
	uint64_t mask = 0;
	for (uint32_t v = 0; v < in->n_venues; v++) {
		uint16_t vix = c->venue_by_id[in->venues[v]];
		if (vix == 0 || vix > 64)
			return -1; /* venues first; at most 64 can be listed */
		mask |= 1ull << (vix - 1);
	}
	uint32_t ix = symbol_slot(g, in->symbol);
	if (ix == RISK_NIL)
		return -1;
	struct risk_instrument *ri = &g->instruments[ix];
	memset(ri, 0, sizeof(*ri));
	ri->tick = in->tick_size ? in->tick_size : 10000;
	ri->lot = in->lot_size ? in->lot_size : 1;
	ri->ref_price = in->reference_price;
	ri->band_pct = in->band_pct;
	ri->band_abs = in->band_abs;
	ri->restricted = in->restricted != 0;
	ri->halted = in->halted != 0;
	ri->any_venue = in->n_venues == 0;
	ri->venue_mask = mask;
	ri->present = 1;
	return 0;
}

int oms_gen_add_account(struct risk_gen *g, const struct oms_account_config *a)
{
	if (risk_account_find(g, a->id) != RISK_NIL ||
	    a->max_order_notional < 0 || a->credit_limit < 0)
		return -1;
	uint32_t slot = account_slot(g, a->id);
	if (slot == RISK_NIL)
		return -1;
	struct risk_acct_limits *ra = &g->accounts[slot];
	ra->max_order_qty = a->max_order_qty;
	ra->max_order_notional = a->max_order_notional;
	ra->max_open_orders = a->max_open_orders;
	ra->credit_limit = a->credit_limit;
	ra->ord_types = a->ord_types;
	ra->tifs = a->tifs;
	ra->kill = a->kill != 0;
	ra->present = 1;
	return 0;
}

int oms_gen_add_position_limit(struct risk_gen *g, uint32_t account,
			       const char symbol[8], int64_t max_position)
{
	uint32_t a = risk_account_find(g, account);
	uint32_t in = risk_symbol_find(g, symbol);

	if (a == RISK_NIL || in == RISK_NIL || max_position < 0)
		return -1;
	uint32_t p = position_slot(g, a, in);
	if (p == RISK_NIL || g->positions[p].max_position >= 0)
		return -1;
	g->positions[p].max_position = max_position;
	return 0;
}

int oms_gen_set_throttle(struct risk_gen *g, const struct oms_core *c,
			 uint32_t session_id, uint32_t per_s, uint32_t burst)
{
	const struct session *s = core_session_by_id(c, session_id);

	if (!s || per_s > 10000000 || burst > 1000000)
		return -1;
	struct risk_rate *r = &g->rates[s - c->sessions];
	r->rate = per_s;
	r->cap = (uint64_t)(burst ? burst : 1) * RISK_TOKEN;
	return 0;
}

int oms_gen_set_session_accounts(struct risk_gen *g, const struct oms_core *c,
				 uint32_t session_id, const uint32_t *accounts, uint32_t n)
{
	const struct session *s = core_session_by_id(c, session_id);

	if (!s || n > OMS_SESSION_ACCOUNTS)
		return -1;
	struct risk_rate *r = &g->rates[s - c->sessions];
	for (uint32_t k = 0; k < n; k++) {
		if (risk_account_find(g, accounts[k]) == RISK_NIL)
			return -1; /* accounts first */
		r->accounts[k] = accounts[k];
	}
	r->n_accounts = n;
	return 0;
}

int oms_gen_add_route(struct risk_gen *g, const struct oms_core *c,
		      const struct oms_route_config *r)
{
	uint16_t vix = r->sor ? RISK_ROUTE_SOR : c->venue_by_id[r->venue];
	uint32_t a = RISK_NIL, in = RISK_NIL;
	uint64_t exclude = 0;

	if ((!r->sor && (r->venue == 0 || vix == 0)) || (r->sor && r->venue) ||
	    r->n_exclude > 16 || (r->n_exclude && !r->sor))
		return -1;
	for (uint32_t k = 0; k < r->n_exclude; k++) {
		uint16_t x = c->venue_by_id[r->exclude[k]];
		if (x == 0 || x > 64)
			return -1;
		exclude |= 1ull << (x - 1);
	}
	if (r->by_account && (a = risk_account_find(g, r->account)) == RISK_NIL)
		return -1;
	if (r->by_symbol && (in = risk_symbol_find(g, r->symbol)) == RISK_NIL)
		return -1;
	struct risk_route *slot;
	if (a != RISK_NIL && in != RISK_NIL) {
		uint32_t p = position_slot(g, a, in);
		if (p == RISK_NIL)
			return -1;
		slot = &g->positions[p].route;
	} else if (in != RISK_NIL) {
		slot = &g->instruments[in].route;
	} else if (a != RISK_NIL) {
		slot = &g->account_route[a];
	} else {
		slot = &g->default_route;
	}
	if (slot->venue != 0)
		return -1; /* one rule per key */
	slot->venue = vix;
	slot->exclude = exclude;
	return 0;
}

int oms_gen_set_fill_model(struct risk_gen *g, const struct oms_fill_model *m,
			   int64_t miss_penalty)
{
	struct oms_fill_model *copy;

	if (miss_penalty < 0)
		return -1;
	if (!m) {
		free(g->fill_model);
		g->fill_model = NULL;
		return 0;
	}
	copy = aligned_alloc(64, (sizeof(*copy) + 63) & ~(size_t)63);
	if (!copy)
		return -1;
	memcpy(copy, m, sizeof(*copy));
	if (oms_fill_model_seal(copy)) {
		free(copy);
		return -1;
	}
	free(g->fill_model);
	g->fill_model = copy;
	g->sor_miss_penalty = miss_penalty;
	return 0;
}

uint64_t oms_gen_fill_model_id(const struct risk_gen *g)
{
	return g && g->fill_model ? g->fill_model->id : 0;
}

int oms_gen_set_sor_cost(struct risk_gen *g, int64_t cost_per_us)
{
	if (cost_per_us < 0)
		return -1;
	g->sor_cost_per_us = cost_per_us;
	return 0;
}

int oms_gen_set_sor_split(struct risk_gen *g, uint32_t max_children)
{
	if (max_children == 0 || max_children > OMS_SPLIT_MAX)
		return -1;
	g->sor_split_max = max_children;
	return 0;
}
