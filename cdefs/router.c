/* What the core reads from market data - halts, reference prices, top of
 * book - the venue latency monitor, and the smart order router
 * (docs/semantics.md "Market data in the core", "Venue health", "Smart
 * order routing").  The feeds are read-only here: their one writer is the
 * feed's owner (on this machine the same worker, between bursts), so a
 * seqlocked read is always consistent and never waits for long. */
#include <string.h>

#include "pipeline.h"

/* The venue's top of book for the instrument, when it has a feed that
 * publishes one; 0 otherwise. */
static int market_tob(const struct venue *v, uint32_t instrument,
		      struct oms_tob_view *t)
{
	if (!v->feed)
		return 0;
	const struct oms_tob *tob = oms_feed_tob(v->feed, instrument);
	if (!tob)
		return 0;
	oms_tob_read(tob, t);
	return 1;
}

int market_halted(const struct venue *v, uint32_t instrument)
{
	return v->feed ? oms_feed_halted(v->feed, instrument) : 0;
}

/* The price bands' reference: while the venue's book is sound, its mid
 * (both sides shown) or else its last trade, rounded down to the tick so
 * that a market order valued at it passes R13; otherwise the
 * configuration's. */
int64_t market_ref_price(const struct venue *v, uint32_t instrument,
			 int64_t cfg_ref, int64_t tick)
{
	struct oms_tob_view t;
	int64_t x;

	if (!market_tob(v, instrument, &t) || t.stale)
		return cfg_ref;
	if (t.bid_qty && t.ask_qty)
		x = t.bid_px + (t.ask_px - t.bid_px) / 2;
	else if (t.last_qty)
		x = t.last_px;
	else
		return cfg_ref;
	if (x <= 0)
		return cfg_ref;
	return x - x % tick;
}

int venue_unresponsive(const struct venue *v)
{
	return v->max_unanswered && v->unanswered >= v->max_unanswered;
}

void venue_order_sent(struct oms_core *c, struct venue *v, struct order *od)
{
	od->answered = 0;
	v->unanswered++;
	if (v->max_unanswered && v->unanswered == v->max_unanswered)
		c->stats.event[OMS_EV_VENUE_UNRESPONSIVE]++;
}

/* The venue's first message about an order: one round trip sample. */
void venue_order_answered(struct oms_core *c, struct venue *v, struct order *od)
{
	uint64_t rtt = c->now_ns - od->state_ts[OMS_ST_PENDING_NEW];
	uint32_t b = rtt < 2 ? 0 : 63u - (uint32_t)__builtin_clzll(rtt);

	od->answered = 1;
	v->unanswered--;
	v->rtt_ewma_ns = v->rtt_samples ? (v->rtt_ewma_ns * 7 + rtt) >> 3 : rtt;
	v->rtt_last_ns = rtt;
	v->rtt_samples++;
	v->rtt_hist[b < OMS_RTT_BUCKETS ? b : OMS_RTT_BUCKETS - 1]++;
}

/* Is `a` (effective price, size, latency) better than `b` for this side? */
static int better(uint8_t side, int64_t ea, uint32_t qa, uint64_t la,
		  int64_t eb, uint32_t qb, uint64_t lb)
{
	if (ea != eb)
		return side == SP_SIDE_BUY ? ea < eb : ea > eb;
	if (qa != qb)
		return qa > qb;
	return la < lb;
}

/* The K best eligible venues so far, best first: `e` effective price,
 * `q` displayed size, `l` latency, `i` venue index. */
struct ranked {
	int64_t e;
	uint64_t l;
	uint32_t q, i;
};

/* Insert venue `r` into the ranking of at most `k` (a later venue that
 * ties goes behind: configuration order breaks ties). */
static void rank_insert(uint8_t side, struct ranked *top, uint32_t *n, uint32_t k,
			struct ranked r)
{
	uint32_t j = *n < k ? (*n)++ : k;

	while (j > 0 && better(side, r.e, r.q, r.l, top[j - 1].e, top[j - 1].q, top[j - 1].l)) {
		if (j < k)
			top[j] = top[j - 1];
		j--;
	}
	if (j < k)
		top[j] = r;
}

/* docs/semantics.md "Splitting across venues": each of the ranked venues
 * takes what it displays (in whole lots, at most what is left), the best
 * venue always one child; what no venue shows goes to the best. */
static void split_plan(const struct ranked *top, uint32_t n, uint32_t qty, uint32_t lot,
		       struct route_plan *plan)
{
	uint32_t left = qty;

	plan->n = 0;
	for (uint32_t j = 0; j < n && left > 0; j++) {
		uint32_t a = top[j].q / lot * lot;
		if (a > left)
			a = left;
		if (a == 0 && j > 0)
			continue;
		plan->venue[plan->n] = top[j].i;
		plan->qty[plan->n++] = a;
		left -= a;
	}
	plan->qty[0] += left;
	if (plan->n < 2)
		plan->n = 0;
}

/* The model's probabilities of a decision it made, for the metrics: per
 * venue the last and a running sum, in parts per million (Q30 * 10^6 >> 30). */
static void note_probabilities(struct oms_core *c, const struct oms_route_decision *d)
{
	for (uint32_t k = 0; k < d->n_seen; k++) {
		struct venue *v = &c->venues[k];
		int32_t p = d->seen[k].p_fill;

		if (p < 0)
			continue;
		v->p_last_ppm = (uint32_t)(((uint64_t)p * 1000000u) >> OMS_FILL_P_Q);
		v->p_sum_ppm += v->p_last_ppm;
		v->p_count++;
	}
}

/* The venue's answer settled an order's outcome for the recent fill ratio
 * (docs/semantics.md "Venue health"): its first execution counts 1000, its
 * end without one (a cancel, an IOC's expiry, a reject of its entry) 0;
 * r = (15 r + outcome) / 16, from 500.  Only the venue's answers move it,
 * so re-execution of the journal gives the same ratio. */
void venue_fill_outcome(struct venue *v, struct order *od, int filled)
{
	od->fill_counted = 1;
	v->fill_ratio_pm = (v->fill_ratio_pm * 15 + (filled ? 1000u : 0u)) >> 4;
}

/* docs/semantics.md "Splitting across venues", when the fill model
 * decides: the candidates it scored ranked by expected value (ties:
 * configuration order), the first K, each allotted what it is expected to
 * fill - its displayed size times its fill probability - then walked as
 * the rules' ranking is. */
static void model_split_plan(const struct oms_route_decision *d, const int64_t *ev, uint32_t k,
			     uint32_t qty, uint32_t lot, struct route_plan *plan)
{
	struct ranked top[OMS_SPLIT_MAX];
	uint32_t n = 0;

	for (uint32_t i = 0; i < d->n_seen; i++) {
		const struct oms_route_seen *sn = &d->seen[i];
		if (sn->p_fill < 0)
			continue;
		struct ranked r = {.e = ev[i], .i = i,
				   .q = (uint32_t)(((uint64_t)sn->qty * (uint32_t)sn->p_fill) >>
						   OMS_FILL_P_Q)};
		uint32_t j = n < k ? n++ : k;
		while (j > 0 && r.e > top[j - 1].e) {
			if (j < k)
				top[j] = top[j - 1];
			j--;
		}
		if (j < k)
			top[j] = r;
	}
	split_plan(top, n, qty, lot, plan);
}

/* the route decision's record of a split plan */
static void note_plan(struct oms_route_decision *d, const struct route_plan *plan)
{
	d->n_children = (uint8_t)plan->n;
	for (uint32_t j = 0; j < plan->n; j++)
		if (plan->venue[j] < OMS_ROUTE_SEEN) {
			d->seen[plan->venue[j]].why = j ? OMS_RW_SPLIT : OMS_RW_CHOSEN;
			d->seen[plan->venue[j]].alloc = plan->qty[j];
		}
}

uint32_t router_choose(struct oms_core *c, const struct session *s,
		       const struct sp_new_order *m, uint32_t instrument,
		       uint64_t exclude, struct route_plan *plan)
{
	const struct risk_instrument *in = &c->gen->instruments[instrument];
	uint64_t seq = ++c->route_seq;
	struct oms_route_decision *d = &c->route_ring[seq & (OMS_ROUTE_RING - 1)];
	uint8_t buy = m->side == SP_SIDE_BUY;
	uint32_t k = c->gen->sor_split_max > 1 ? c->gen->sor_split_max : 1;
	struct ranked top[OMS_SPLIT_MAX];
	uint32_t n_top = 0;

	d->seq = seq;
	d->now_ns = c->now_ns;
	d->cl_ord_id = m->cl_ord_id;
	d->price = m->price;
	d->session_id = s->id;
	d->account = m->account;
	d->qty = m->qty;
	d->side = m->side;
	d->ord_type = m->ord_type;
	d->tif = m->tif;
	memcpy(d->symbol, m->symbol, 8);
	d->n_seen = 0;
	d->n_children = 0;
	plan->n = 0;
	plan->d = d;
	for (uint32_t i = 0; i < c->n_venues; i++) {
		const struct venue *v = &c->venues[i];
		struct oms_tob_view t;
		struct oms_route_seen sn = {.venue = v->id, .rtt_ewma_ns = v->rtt_ewma_ns,
					    .p_fill = -1,
					    .fill_ratio_pm = (uint16_t)v->fill_ratio_pm};
		int have = 0;

		if (i < 64 && (exclude >> i & 1))
			sn.why = OMS_RW_EXCLUDED;
		else if (!in->any_venue && (i >= 64 || !(in->venue_mask >> i & 1)))
			sn.why = OMS_RW_NOT_ALLOWED;
		else if (v->down)
			sn.why = OMS_RW_DOWN;
		else if (venue_unresponsive(v))
			sn.why = OMS_RW_UNRESPONSIVE;
		else if (!(have = market_tob(v, instrument, &t)))
			sn.why = OMS_RW_NO_FEED;
		if (have) {
			/* the age as fill_route_choose computes it, in the model's unit */
			uint64_t age = (c->now_ns > t.last_ns ? c->now_ns - t.last_ns : 0) / 1000;
			sn.quote_age_us = age < UINT32_MAX ? (uint32_t)age : UINT32_MAX;
			sn.px = buy ? t.ask_px : t.bid_px;
			sn.qty = buy ? t.ask_qty : t.bid_qty;
			sn.contra_px = buy ? t.bid_px : t.ask_px;
			sn.contra_qty = buy ? t.bid_qty : t.ask_qty;
			if (t.stale)
				sn.why = OMS_RW_STALE;
			else if (t.halted)
				sn.why = OMS_RW_HALTED;
			else if (sn.qty == 0)
				sn.why = OMS_RW_NO_QUOTE;
			else if (m->ord_type == SP_ORD_LIMIT &&
				 (buy ? sn.px > m->price : sn.px < m->price))
				sn.why = OMS_RW_THROUGH_LIMIT;
		}
		if (!sn.why) {
			sn.cost = (int64_t)((__int128)v->rtt_ewma_ns *
					    c->gen->sor_cost_per_us / 1000);
			struct ranked r = {.e = buy ? sn.px + sn.cost : sn.px - sn.cost,
					   .l = v->rtt_ewma_ns, .q = sn.qty, .i = i};
			sn.why = OMS_RW_WORSE;
			rank_insert(m->side, top, &n_top, k, r);
		}
		if (d->n_seen < OMS_ROUTE_SEEN)
			d->seen[d->n_seen++] = sn;
	}
	/* a venue's entry in seen[] is its index (one entry per venue, in
	 * configuration order, the first OMS_ROUTE_SEEN) */
	uint32_t rule = n_top ? top[0].i : RISK_NIL;
	d->model_id = 0;
	d->by_model = 0;
	if (rule != RISK_NIL && rule < OMS_ROUTE_SEEN)
		d->seen[rule].why = OMS_RW_CHOSEN;
	if (c->gen->fill_model) {
		int64_t ev[OMS_ROUTE_SEEN];
		uint32_t best = fill_route_choose(c, m, instrument, d, rule, ev);
		if (d->by_model) {
			note_probabilities(c, d);
			if (k > 1)
				model_split_plan(d, ev, k, m->qty, in->lot ? in->lot : 1, plan);
			if (plan->n)
				note_plan(d, plan);
			else if (best < OMS_ROUTE_SEEN)
				d->seen[best].alloc = m->qty;
			d->venue = c->venues[best].id;
			c->stats.event[OMS_EV_ORDERS_ROUTED]++;
			c->route_counts.by_model++;
			return best;
		}
	}
	if (n_top == 0) {
		d->venue = 0;
		return RISK_NIL;
	}
	c->route_counts.by_rules++;
	if (k > 1)
		split_plan(top, n_top, m->qty, in->lot ? in->lot : 1, plan);
	if (plan->n) {
		note_plan(d, plan);
	} else if (top[0].i < OMS_ROUTE_SEEN) {
		d->seen[top[0].i].alloc = m->qty;
	}
	d->venue = c->venues[top[0].i].id;
	c->stats.event[OMS_EV_ORDERS_ROUTED]++;
	return top[0].i;
}

int oms_core_set_feed(struct oms_core *c, uint16_t venue_id, const struct oms_feed *f)
{
	uint16_t vix = c->venue_by_id[venue_id];

	if (venue_id == 0 || vix == 0)
		return -1;
	c->venues[vix - 1].feed = f;
	return 0;
}

void oms_core_set_market(struct oms_core *c, struct oms_md_dispatch *md)
{
	c->md = md;
}

struct oms_md_dispatch *oms_core_market(const struct oms_core *c)
{
	return c->md;
}

int oms_core_venue_latency(const struct oms_core *c, uint16_t venue_id,
			  struct oms_venue_latency *out)
{
	uint16_t vix = c->venue_by_id[venue_id];

	if (venue_id == 0 || vix == 0)
		return -1;
	const struct venue *v = &c->venues[vix - 1];
	memset(out, 0, sizeof(*out));
	out->rtt_ewma_ns = v->rtt_ewma_ns;
	out->rtt_last_ns = v->rtt_last_ns;
	out->rtt_samples = v->rtt_samples;
	out->unanswered = v->unanswered;
	out->down = v->down;
	out->unresponsive = (uint8_t)venue_unresponsive(v);
	memcpy(out->rtt_hist, v->rtt_hist, sizeof(out->rtt_hist));
	out->fill_ratio_pm = v->fill_ratio_pm;
	out->p_last_ppm = v->p_last_ppm;
	out->p_sum_ppm = v->p_sum_ppm;
	out->p_count = v->p_count;
	return 0;
}

void oms_core_route_counts(const struct oms_core *c, struct oms_route_counts *out)
{
	*out = c->route_counts;
}

uint32_t oms_core_route_decisions(const struct oms_core *c, uint64_t from_seq,
				  struct oms_route_decision *out, uint32_t max)
{
	uint64_t oldest = c->route_seq > OMS_ROUTE_RING ? c->route_seq - OMS_ROUTE_RING + 1 : 1;
	uint32_t n = 0;

	if (from_seq < oldest)
		from_seq = oldest;
	for (uint64_t q = from_seq; q <= c->route_seq && n < max; q++)
		out[n++] = c->route_ring[q & (OMS_ROUTE_RING - 1)];
	return n;
}

uint64_t oms_core_route_seq(const struct oms_core *c)
{
	return c->route_seq;
}
