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

uint32_t router_choose(struct oms_core *c, const struct session *s,
		       const struct sp_new_order *m, uint32_t instrument,
		       uint64_t exclude)
{
	const struct risk_instrument *in = &c->gen->instruments[instrument];
	uint64_t seq = ++c->route_seq;
	struct oms_route_decision *d = &c->route_ring[seq & (OMS_ROUTE_RING - 1)];
	uint8_t buy = m->side == SP_SIDE_BUY;
	uint32_t best = RISK_NIL, best_q = 0;
	int64_t best_e = 0;
	uint64_t best_l = 0;
	uint8_t best_k = 0;

	d->seq = seq;
	d->now_ns = c->now_ns;
	d->cl_ord_id = m->cl_ord_id;
	d->price = m->price;
	d->session_id = s->id;
	d->account = m->account;
	d->qty = m->qty;
	d->side = m->side;
	memcpy(d->symbol, m->symbol, 8);
	d->n_seen = 0;
	for (uint32_t i = 0; i < c->n_venues; i++) {
		const struct venue *v = &c->venues[i];
		struct oms_tob_view t;
		struct oms_route_seen sn = {.venue = v->id, .rtt_ewma_ns = v->rtt_ewma_ns,
					    .p_fill = -1};
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
			sn.px = buy ? t.ask_px : t.bid_px;
			sn.qty = buy ? t.ask_qty : t.bid_qty;
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
			int64_t e = buy ? sn.px + sn.cost : sn.px - sn.cost;
			sn.why = OMS_RW_WORSE;
			if (best == RISK_NIL ||
			    better(m->side, e, sn.qty, v->rtt_ewma_ns, best_e, best_q, best_l)) {
				if (best != RISK_NIL && best_k < OMS_ROUTE_SEEN)
					d->seen[best_k].why = OMS_RW_WORSE;
				best = i;
				best_e = e;
				best_q = sn.qty;
				best_l = v->rtt_ewma_ns;
				best_k = d->n_seen;
				sn.why = OMS_RW_CHOSEN;
			}
		}
		if (d->n_seen < OMS_ROUTE_SEEN)
			d->seen[d->n_seen++] = sn;
	}
	d->model_id = 0;
	d->by_model = 0;
	if (c->gen->fill_model)
		best = fill_route_choose(c, m, instrument, d, best);
	d->venue = best == RISK_NIL ? 0 : c->venues[best].id;
	if (best != RISK_NIL)
		c->stats.event[OMS_EV_ORDERS_ROUTED]++;
	return best;
}

int oms_core_set_feed(struct oms_core *c, uint16_t venue_id, const struct oms_feed *f)
{
	uint16_t vix = c->venue_by_id[venue_id];

	if (venue_id == 0 || vix == 0)
		return -1;
	c->venues[vix - 1].feed = f;
	return 0;
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
	return 0;
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
