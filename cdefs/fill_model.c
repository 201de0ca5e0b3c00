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

/* Division by a divisor known before the loop (the tick, the order's
 * quantity): q = floor(a * floor((2^64 - 1) / d) / 2^64) is floor(a / d) or
 * one less for any a < 2^64, and one compare corrects it; a multiply where a
 * division costs ten times more, three venues needing six of them. */
struct divisor {
	uint64_t d, m;
};

static inline struct divisor divisor_of(uint64_t d)
{
	return (struct divisor){d, UINT64_MAX / d};
}

static inline uint64_t udiv(uint64_t a, struct divisor d)
{
	uint64_t q = (uint64_t)(((unsigned __int128)a * d.m) >> 64);

	return q + (a - q * d.d >= d.d);
}

/* Python's floor division: for a < 0, floor(a / d) = ~floor(~a / d). */
static inline int64_t sdiv_floor(int64_t a, struct divisor d)
{
	uint64_t s = (uint64_t)(a >> 63);

	return (int64_t)(udiv((uint64_t)a ^ s, d) ^ s);
}

/* What the order alone decides, once for all its venues. */
struct order_prep {
	int64_t price, sgn;
	struct divisor tick, qty;
	int64_t side, tif, tod;
	uint8_t buy;
};

static inline int prep_order(const struct oms_fill_order *o, struct order_prep *op)
{
	if (!o->qty || o->tick <= 0)
		return -1;
	op->price = o->price;
	op->buy = o->buy;
	op->sgn = o->buy ? 1 : -1;
	op->tick = divisor_of((uint64_t)o->tick);
	op->qty = divisor_of(o->qty);
	op->side = !o->buy;
	op->tif = o->ioc ? 1 : 0;
	op->tod = o->tod_ns > OPEN_NS ? (int64_t)((o->tod_ns - OPEN_NS) / 60000000000ULL) : 0;
	return 0;
}

/* The features of one venue for a prepared order (the order's own ones included). */
static inline int quote_features(const struct order_prep *op, const struct oms_fill_quote *q,
				 int64_t f[OMS_FILL_FEATURES])
{
	if (!q->bid_qty || !q->ask_qty)
		return -1;
	int64_t own_px = op->buy ? q->bid_px : q->ask_px;
	int64_t con_px = op->buy ? q->ask_px : q->bid_px;
	int64_t own_q = op->buy ? q->bid_qty : q->ask_qty;
	int64_t con_q = op->buy ? q->ask_qty : q->bid_qty;

	f[OMS_FILL_F_VENUE] = q->venue;
	f[OMS_FILL_F_SIDE] = op->side;
	f[OMS_FILL_F_OWN_OFF] = sdiv_floor(op->sgn * (op->price - own_px), op->tick);
	f[OMS_FILL_F_CONTRA] = sdiv_floor(op->sgn * (op->price - con_px), op->tick);
	f[OMS_FILL_F_SPREAD] = sdiv_floor(q->ask_px - q->bid_px, op->tick);
	f[OMS_FILL_F_OWN_QTY] = (int64_t)udiv((uint64_t)own_q * 100, op->qty);
	f[OMS_FILL_F_CONTRA_QTY] = (int64_t)udiv((uint64_t)con_q * 100, op->qty);
	f[OMS_FILL_F_IMBALANCE] = div_floor((own_q - con_q) * 100, own_q + con_q);
	f[OMS_FILL_F_LATENCY] = (int64_t)(q->rtt_ewma_ns / 1000);
	f[OMS_FILL_F_FILL_RATIO] = q->fill_ratio_pm;
	f[OMS_FILL_F_QUOTE_AGE] = (int64_t)(q->quote_age_ns / 1000);
	f[OMS_FILL_F_TIF] = op->tif;
	f[OMS_FILL_F_TOD] = op->tod;
	return 0;
}

static inline void split_input(const struct oms_fill_input *in, struct oms_fill_order *o,
			       struct oms_fill_quote *q)
{
	*o = (struct oms_fill_order){.price = in->price, .tick = in->tick, .tod_ns = in->tod_ns,
				     .qty = in->qty, .buy = in->buy, .ioc = in->ioc};
	*q = (struct oms_fill_quote){.bid_px = in->bid_px, .ask_px = in->ask_px,
				     .rtt_ewma_ns = in->rtt_ewma_ns,
				     .quote_age_ns = in->quote_age_ns, .bid_qty = in->bid_qty,
				     .ask_qty = in->ask_qty, .fill_ratio_pm = in->fill_ratio_pm,
				     .venue = in->venue};
}

int oms_fill_features(const struct oms_fill_input *in, int64_t f[OMS_FILL_FEATURES])
{
	struct oms_fill_order o;
	struct oms_fill_quote q;
	struct order_prep op;

	split_input(in, &o, &q);
	if (prep_order(&o, &op))
		return -1;
	return quote_features(&op, &q, f);
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
		for (int j = 1; j < m->n_edges[k]; j++)
			if (m->edges[k][j] <= m->edges[k][j - 1])
				return -1; /* the bins count edges in order */
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
	for (uint32_t i = 0; i < n; i++) {
		const struct oms_fill_table *t = &m->tables[i];

		m->used |= 1u << t->a | (t->b == OMS_FILL_NO_B ? 0 : 1u << t->b);
		m->lookups[i] = (struct oms_fill_lookup){
			.offset = t->offset, .stride = t->nb_b, .a = t->a,
			.b = t->b == OMS_FILL_NO_B ? OMS_FILL_FEATURES : t->b};
	}
	m->n_lookups = n;
	m->direct_mask = 0;
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		uint32_t ne = m->n_edges[k];

		/* base: one below the first edge, so index 0 is bin 0 */
		if (ne && (m->edges[k][0] == INT64_MIN ||
			   (uint64_t)m->edges[k][ne - 1] - (uint64_t)(m->edges[k][0] - 1) >=
				   OMS_FILL_DIRECT))
			continue;
		m->base[k] = ne ? m->edges[k][0] - 1 : 0;
		for (uint32_t v = 0, bin = 0; v < OMS_FILL_DIRECT; v++) {
			while (bin < ne && m->edges[k][bin] - m->base[k] <= (int64_t)v)
				bin++;
			m->direct[k][v] = (uint8_t)bin;
		}
		m->direct_mask |= 1u << k;
	}
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

/* The bin of feature k's value v (already in the model's range). */
static inline uint32_t bin_k(const struct oms_fill_model *m, int k, int64_t v)
{
	if (m->direct_mask >> k & 1) {
		/* unsigned: v - base may not fit in an int64_t; v > base makes it exact */
		uint64_t i = (uint64_t)v - (uint64_t)m->base[k];

		i = v <= m->base[k] ? 0 : i >= OMS_FILL_DIRECT ? OMS_FILL_DIRECT - 1 : i;
		return m->direct[k][i];
	}
	return bin_of(m->edges[k], v);
}

/* Any feature outside the range the model answers for. */
#if defined(__AVX512F__)
static inline int out_of_range(const struct oms_fill_model *m, const int64_t *f)
{
	const __mmask8 tail = (1u << (OMS_FILL_FEATURES - 8)) - 1;
	__m512i f0 = _mm512_loadu_si512((const void *)f);
	__m512i f1 = _mm512_maskz_loadu_epi64(tail, f + 8);
	__mmask8 bad = _mm512_cmplt_epi64_mask(f0, _mm512_loadu_si512((const void *)m->lo)) |
		       _mm512_cmpgt_epi64_mask(f0, _mm512_loadu_si512((const void *)m->hi)) |
		       _mm512_mask_cmplt_epi64_mask(tail, f1, _mm512_maskz_loadu_epi64(tail, m->lo + 8)) |
		       _mm512_mask_cmpgt_epi64_mask(tail, f1, _mm512_maskz_loadu_epi64(tail, m->hi + 8));

	return bad != 0;
}
#else
static inline int out_of_range(const struct oms_fill_model *m, const int64_t *f)
{
	uint64_t out = 0;

	for (int k = 0; k < OMS_FILL_FEATURES; k++)
		out |= (uint64_t)(f[k] < m->lo[k]) | (uint64_t)(f[k] > m->hi[k]);
	return out != 0;
}
#endif

static inline int32_t logistic(const struct oms_fill_model *m, int64_t z)
{
	const int64_t zmax = (int64_t)8 << OMS_FILL_Q;

	z = (z < -zmax ? -zmax : z > zmax ? zmax : z) + zmax;
	uint32_t i = (uint32_t)(z >> OMS_FILL_LUT_SHIFT);
	int64_t frac = z & ((1 << OMS_FILL_LUT_SHIFT) - 1);
	int64_t lo = m->lut[i], hi = m->lut[i + 1 < OMS_FILL_LUT ? i + 1 : i];

	return (int32_t)(lo + (((hi - lo) * frac) >> OMS_FILL_LUT_SHIFT));
}

/* The order's own features (side, TIF, time of day) are range-checked and
 * binned once; each venue then computes, checks and bins the rest. */
enum { ORDER_FEATURES = 1u << OMS_FILL_F_SIDE | 1u << OMS_FILL_F_TIF | 1u << OMS_FILL_F_TOD };

uint32_t oms_fill_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			const struct oms_fill_quote *q, uint32_t n, int32_t *p)
{
	struct order_prep op;
	int64_t f[OMS_FILL_FEATURES];
	uint32_t bin[OMS_FILL_FEATURES + 1];
	uint32_t answered = 0;
	const uint32_t venue_used = m->used & ~(uint32_t)ORDER_FEATURES;

	for (uint32_t v = 0; v < n; v++)
		p[v] = -1;
	if (prep_order(o, &op))
		return 0;
	f[OMS_FILL_F_SIDE] = op.side;
	f[OMS_FILL_F_TIF] = op.tif;
	f[OMS_FILL_F_TOD] = op.tod;
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		if (!(ORDER_FEATURES >> k & 1))
			continue;
		if (f[k] < m->lo[k] || f[k] > m->hi[k])
			return 0;
		if (m->used >> k & 1)
			bin[k] = bin_k(m, k, f[k]);
	}
	bin[OMS_FILL_FEATURES] = 0; /* a one-feature table's b */
	for (uint32_t v = 0; v < n; v++) {
		int64_t z = m->bias;

		if (q[v].venue >= m->n_venues || quote_features(&op, &q[v], f) ||
		    out_of_range(m, f))
			continue;
#pragma GCC unroll 16
		for (int k = 0; k < OMS_FILL_FEATURES; k++)
			if (venue_used >> k & 1)
				bin[k] = bin_k(m, k, f[k]);
		for (uint32_t i = 0; i < m->n_lookups; i++) {
			const struct oms_fill_lookup *t = &m->lookups[i];

			z += m->w[t->offset + bin[t->a] * t->stride + bin[t->b]];
		}
		p[v] = logistic(m, z);
		answered++;
	}
	return answered;
}

int32_t oms_fill_prob(const struct oms_fill_model *m, const struct oms_fill_input *in)
{
	struct oms_fill_order o;
	struct oms_fill_quote q;
	int32_t p;

	split_input(in, &o, &q);
	oms_fill_probs(m, &o, &q, 1, &p);
	return p;
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
			   uint32_t rule_best, int64_t *ev_out)
{
	const struct oms_fill_model *fm = c->gen->fill_model;
	const struct risk_instrument *ins = &c->gen->instruments[instrument];
	uint8_t buy = m->side == SP_SIDE_BUY;
	uint32_t best = RISK_NIL;
	int64_t best_ev = 0;
	int32_t p[OMS_ROUTE_SEEN], pq[OMS_ROUTE_SEEN];
	struct oms_fill_quote q[OMS_ROUTE_SEEN];
	uint32_t at[OMS_ROUTE_SEEN], nq = 0;

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
		q[nq] = (struct oms_fill_quote){
			.bid_px = t.bid_px, .ask_px = t.ask_px, .rtt_ewma_ns = v->rtt_ewma_ns,
			.quote_age_ns = c->now_ns > t.last_ns ? c->now_ns - t.last_ns : 0,
			.bid_qty = t.bid_qty, .ask_qty = t.ask_qty, .fill_ratio_pm = v->fill_ratio_pm,
			.venue = fm->slot[k]};
		at[nq++] = k;
	}
	struct oms_fill_order o = {.price = m->price, .tick = ins->tick,
				   .tod_ns = c->now_ns % DAY_NS, .qty = m->qty, .buy = buy,
				   .ioc = m->tif == SP_TIF_IOC};
	/* one call: the order's own part computed once for every venue (the
	 * rules' choice is among the candidates, so there is one) */
	if (nq == 0 || oms_fill_probs(fm, &o, q, nq, pq) < nq)
		return rule_best; /* a feature out of the model's range */
	for (uint32_t j = 0; j < nq; j++)
		p[at[j]] = pq[j];
	for (uint32_t k = 0; k < d->n_seen; k++) {
		struct oms_route_seen *sn = &d->seen[k];

		if (p[k] < 0)
			continue;
		sn->p_fill = p[k];
		int64_t ev = expected_value(p[k], buy ? m->price - sn->px : sn->px - m->price,
					    sn->cost, c->gen->sor_miss_penalty);
		ev_out[k] = ev;
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
