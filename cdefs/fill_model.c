/* The fill-probability model's evaluator (cdefs/fill_model.h,
 * docs/fill-model.md "In the core").  Integer arithmetic only, the same as
 * control/fill_artefact.py predict_q, on the features control/fill_dataset.py
 * raw_features computes. */
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fill_model.h"
#include "pipeline.h"

#define OPEN_NS 34200000000000ULL /* 09:30: time-of-day buckets count from the open */

/* Python's floor division, for a positive divisor. */
static inline int64_t div_floor(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && a < 0) ? q - 1 : q;
}

int oms_fill_features(const struct oms_fill_input *in, int64_t f[OMS_FILL_FEATURES])
{
	if (!in->bid_qty || !in->ask_qty || !in->qty || in->tick <= 0)
		return -1;
	int64_t own_px = in->buy ? in->bid_px : in->ask_px;
	int64_t con_px = in->buy ? in->ask_px : in->bid_px;
	int64_t own_q = in->buy ? in->bid_qty : in->ask_qty;
	int64_t con_q = in->buy ? in->ask_qty : in->bid_qty;
	int64_t sgn = in->buy ? 1 : -1;

	f[OMS_FILL_F_VENUE] = in->venue;
	f[OMS_FILL_F_SIDE] = !in->buy;
	f[OMS_FILL_F_OWN_OFF] = div_floor(sgn * (in->price - own_px), in->tick);
	f[OMS_FILL_F_CONTRA] = div_floor(sgn * (in->price - con_px), in->tick);
	f[OMS_FILL_F_SPREAD] = div_floor(in->ask_px - in->bid_px, in->tick);
	f[OMS_FILL_F_OWN_QTY] = own_q * 100 / in->qty;
	f[OMS_FILL_F_CONTRA_QTY] = con_q * 100 / in->qty;
	f[OMS_FILL_F_IMBALANCE] = div_floor((own_q - con_q) * 100, own_q + con_q);
	f[OMS_FILL_F_LATENCY] = (int64_t)(in->rtt_ewma_ns / 1000);
	f[OMS_FILL_F_FILL_RATIO] = in->fill_ratio_pm;
	f[OMS_FILL_F_QUOTE_AGE] = (int64_t)(in->quote_age_ns / 1000);
	f[OMS_FILL_F_TIF] = in->ioc ? 1 : 0;
	f[OMS_FILL_F_TOD] = in->tod_ns > OPEN_NS ? (int64_t)((in->tod_ns - OPEN_NS) / 60000000000ULL) : 0;
	return 0;
}

/* Add one-feature table `s` into pair table `p` (which reads its feature). */
static int fold(struct oms_fill_model *m, const struct oms_fill_table *s,
		const struct oms_fill_table *p)
{
	uint32_t na = m->n_edges[p->a] + 1u;

	for (uint32_t i = 0; i < na; i++)
		for (uint32_t j = 0; j < p->nb_b; j++) {
			int64_t w = (int64_t)m->w[p->offset + i * p->nb_b + j] +
				    m->w[s->offset + (s->a == p->a ? i : j)];
			if (w > INT32_MAX || w < INT32_MIN)
				return -1;
			m->w[p->offset + i * p->nb_b + j] = (int32_t)w;
		}
	return 0;
}

int oms_fill_model_seal(struct oms_fill_model *m)
{
	uint32_t cells = 0, n = 0;

	if (m->sealed)
		return 0;
	if (m->n_tables == 0 || m->n_tables > OMS_FILL_TABLES || m->n_venues == 0)
		return -1;
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		if (m->n_edges[k] >= OMS_FILL_EDGES || m->hi[k] == INT64_MAX ||
		    m->lo[k] > m->hi[k])
			return -1;
		for (int j = m->n_edges[k]; j < OMS_FILL_EDGES; j++)
			m->edges[k][j] = INT64_MAX;
	}
	for (uint32_t i = 0; i < m->n_tables; i++) {
		const struct oms_fill_table *t = &m->tables[i];
		uint32_t na, nb;

		if (t->a >= OMS_FILL_FEATURES ||
		    (t->b != OMS_FILL_NO_B && (t->b >= OMS_FILL_FEATURES || t->b == t->a)))
			return -1;
		na = m->n_edges[t->a] + 1u;
		nb = t->b == OMS_FILL_NO_B ? 1u : m->n_edges[t->b] + 1u;
		if (t->nb_b != nb || t->offset != cells || cells + na * nb > OMS_FILL_CELLS)
			return -1;
		cells += na * nb;
	}
	for (int j = 1; j < OMS_FILL_LUT; j++)
		if (m->lut[j] < m->lut[j - 1] || m->lut[j] > 1u << OMS_FILL_P_Q)
			return -1;
	for (uint32_t i = 0; i < m->n_tables; i++) {
		const struct oms_fill_table *t = &m->tables[i];
		uint32_t into = m->n_tables;

		for (uint32_t j = 0; t->b == OMS_FILL_NO_B && j < m->n_tables; j++)
			if (m->tables[j].b != OMS_FILL_NO_B &&
			    (m->tables[j].a == t->a || m->tables[j].b == t->a)) {
				into = j;
				break;
			}
		if (into == m->n_tables)
			m->tables[n++] = *t; /* kept (a pair, or a feature no pair reads) */
		else if (fold(m, t, &m->tables[into]))
			return -1;
	}
	m->n_tables = n;
	m->used = 0;
	for (uint32_t i = 0; i < n; i++)
		m->used |= 1u << m->tables[i].a |
			   (m->tables[i].b == OMS_FILL_NO_B ? 0 : 1u << m->tables[i].b);
	m->sealed = 1;
	return 0;
}

/* The bin of v: how many of the feature's edges are at or below it; the
 * padding INT64_MAX never is (the model's range ends below it).  With
 * AVX-512, two compares of 8 edges and a popcount, no branch; otherwise a
 * walk that stops early, which measured twice as fast as a fixed-length
 * count and faster than a branch-free binary search (docs/fill-model.md
 * "In the core"). */
#if defined(__AVX512F__)
static inline uint32_t bin_of(const int64_t *edges, int64_t v)
{
	__m512i x = _mm512_set1_epi64(v);
	__mmask8 a = _mm512_cmpge_epi64_mask(x, _mm512_loadu_si512((const void *)edges));
	__mmask8 b = _mm512_cmpge_epi64_mask(x, _mm512_loadu_si512((const void *)(edges + 8)));

	return (uint32_t)__builtin_popcount(a) + (uint32_t)__builtin_popcount(b);
}
#else
static inline uint32_t bin_of(const int64_t *edges, int64_t v)
{
	uint32_t n = 0;

	while (v >= edges[n])
		n++;
	return n;
}
#endif

int32_t oms_fill_prob(const struct oms_fill_model *m, const struct oms_fill_input *in)
{
	int64_t f[OMS_FILL_FEATURES];
	uint32_t bin[OMS_FILL_FEATURES + 1];
	int64_t z = m->bias;
	uint64_t out = 0;

	if (in->venue >= m->n_venues || oms_fill_features(in, f))
		return -1;
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		int64_t over = f[k] > m->hi[k];

		out |= (uint64_t)(f[k] < m->lo[k]) | (uint64_t)over;
		if (m->used >> k & 1) /* bounded walk */
			bin[k] = bin_of(m->edges[k], over ? m->hi[k] : f[k]);
	}
	if (out)
		return -1;
	bin[OMS_FILL_FEATURES] = 0; /* a one-feature table's b */
	for (uint32_t i = 0; i < m->n_tables; i++) {
		const struct oms_fill_table *t = &m->tables[i];
		uint32_t b = t->b == OMS_FILL_NO_B ? OMS_FILL_FEATURES : t->b;

		z += m->w[t->offset + bin[t->a] * t->nb_b + bin[b]];
	}
	const int64_t zmax = (int64_t)8 << OMS_FILL_Q;
	z = (z < -zmax ? -zmax : z > zmax ? zmax : z) + zmax;
	uint32_t i = (uint32_t)(z >> OMS_FILL_LUT_SHIFT);
	int64_t frac = z & ((1 << OMS_FILL_LUT_SHIFT) - 1);
	int64_t lo = m->lut[i], hi = m->lut[i + 1 < OMS_FILL_LUT ? i + 1 : i];

	return (int32_t)(lo + (((hi - lo) * frac) >> OMS_FILL_LUT_SHIFT));
}

#define DAY_NS 86400000000000ULL

/* The expected value of sending the order to a candidate, in price units
 * per share: p x (price improvement against the limit) - latency cost -
 * (1 - p) x the price of a miss (docs/fill-model.md "In the router"). */
static int64_t expected_value(int32_t p, int64_t improvement, int64_t cost, int64_t miss)
{
	__int128 gain = (__int128)p * improvement;
	__int128 lost = (__int128)((1 << OMS_FILL_P_Q) - p) * miss;

	return (int64_t)((gain - lost) >> OMS_FILL_P_Q) - cost;
}

uint32_t fill_route_choose(struct oms_core *c, const struct sp_new_order *m,
			   uint32_t instrument, struct oms_route_decision *d,
			   uint32_t rule_best)
{
	const struct oms_fill_model *fm = c->gen->fill_model;
	const struct risk_instrument *ins = &c->gen->instruments[instrument];
	uint8_t buy = m->side == SP_SIDE_BUY;
	uint32_t best = RISK_NIL;
	int64_t best_ev = 0;
	int32_t p[OMS_ROUTE_SEEN];

	d->model_id = fm->id;
	/* a market order has no limit to improve on; the record must name
	 * every venue for its probabilities to mean anything */
	if (rule_best == RISK_NIL || m->ord_type != SP_ORD_LIMIT || d->n_seen < c->n_venues)
		return rule_best;
	for (uint32_t k = 0; k < d->n_seen; k++) {
		const struct oms_route_seen *sn = &d->seen[k];
		const struct venue *v = &c->venues[k];
		struct oms_tob_view t;

		p[k] = -1;
		if (sn->why != OMS_RW_CHOSEN && sn->why != OMS_RW_WORSE)
			continue;
		if (k >= OMS_FILL_MAX_VENUES || fm->slot[k] == OMS_FILL_NO_SLOT || !v->feed)
			return rule_best;
		const struct oms_tob *tob = oms_feed_tob(v->feed, instrument);
		if (!tob)
			return rule_best;
		oms_tob_read(tob, &t);
		struct oms_fill_input in = {
			.price = m->price, .bid_px = t.bid_px, .ask_px = t.ask_px, .tick = ins->tick,
			.rtt_ewma_ns = v->rtt_ewma_ns,
			.quote_age_ns = c->now_ns > t.last_ns ? c->now_ns - t.last_ns : 0,
			.tod_ns = c->now_ns % DAY_NS, .qty = m->qty, .bid_qty = t.bid_qty,
			.ask_qty = t.ask_qty, .fill_ratio_pm = v->fill_ratio_pm,
			.venue = fm->slot[k], .buy = buy, .ioc = m->tif == SP_TIF_IOC};
		p[k] = oms_fill_prob(fm, &in);
		if (p[k] < 0)
			return rule_best; /* a feature out of the model's range */
	}
	for (uint32_t k = 0; k < d->n_seen; k++) {
		struct oms_route_seen *sn = &d->seen[k];

		if (p[k] < 0)
			continue;
		sn->p_fill = p[k];
		int64_t ev = expected_value(p[k], buy ? m->price - sn->px : sn->px - m->price,
					    sn->cost, c->gen->sor_miss_penalty);
		/* ties keep configuration order */
		if (best == RISK_NIL || ev > best_ev) {
			best = k;
			best_ev = ev;
		}
	}
	for (uint32_t k = 0; k < d->n_seen; k++)
		if (p[k] >= 0)
			d->seen[k].why = k == best ? OMS_RW_CHOSEN : OMS_RW_WORSE;
	d->by_model = 1;
	return best;
}
