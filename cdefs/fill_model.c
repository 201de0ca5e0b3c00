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
	op->tick.d = (uint64_t)o->tick;
	op->qty.d = o->qty;
	op->side = !o->buy;
	op->tif = o->ioc ? 1 : 0;
	op->tod = o->tod_ns > OPEN_NS ? (int64_t)((o->tod_ns - OPEN_NS) / 60000000000ULL) : 0;
	return 0;
}

/* The reciprocals the scalar way divides by (the vector way needs none). */
static inline void prep_divisors(struct order_prep *op)
{
	op->tick = divisor_of(op->tick.d);
	op->qty = divisor_of(op->qty.d);
}

/* The order's own features, into f[k x stride]. */
static inline void order_features(const struct order_prep *op, int64_t *f, uint32_t stride)
{
	f[OMS_FILL_F_SIDE * stride] = op->side;
	f[OMS_FILL_F_TIF * stride] = op->tif;
	f[OMS_FILL_F_TOD * stride] = op->tod;
}

/* The features of one venue for a prepared order, into f[k x stride], but
 * those in `skip` (a feature no table reads and whose range cannot refuse
 * need not be computed: docs/fill-model.md "In the core"). */
static inline int quote_features(const struct order_prep *op, const struct oms_fill_quote *q,
				 uint32_t skip, int64_t *f, uint32_t stride)
{
	if (!q->bid_qty || !q->ask_qty)
		return -1;
	int64_t own_px = op->buy ? q->bid_px : q->ask_px;
	int64_t con_px = op->buy ? q->ask_px : q->bid_px;
	int64_t own_q = op->buy ? q->bid_qty : q->ask_qty;
	int64_t con_q = op->buy ? q->ask_qty : q->bid_qty;

	f[OMS_FILL_F_VENUE * stride] = q->venue;
	f[OMS_FILL_F_OWN_OFF * stride] = sdiv_floor(op->sgn * (op->price - own_px), op->tick);
	f[OMS_FILL_F_CONTRA * stride] = sdiv_floor(op->sgn * (op->price - con_px), op->tick);
	f[OMS_FILL_F_SPREAD * stride] = sdiv_floor(q->ask_px - q->bid_px, op->tick);
	if (!(skip >> OMS_FILL_F_OWN_QTY & 1))
		f[OMS_FILL_F_OWN_QTY * stride] = (int64_t)udiv((uint64_t)own_q * 100, op->qty);
	if (!(skip >> OMS_FILL_F_CONTRA_QTY & 1))
		f[OMS_FILL_F_CONTRA_QTY * stride] = (int64_t)udiv((uint64_t)con_q * 100, op->qty);
	if (!(skip >> OMS_FILL_F_IMBALANCE & 1))
		f[OMS_FILL_F_IMBALANCE * stride] = div_floor((own_q - con_q) * 100, own_q + con_q);
	if (!(skip >> OMS_FILL_F_LATENCY & 1))
		f[OMS_FILL_F_LATENCY * stride] = (int64_t)(q->rtt_ewma_ns / 1000);
	if (!(skip >> OMS_FILL_F_FILL_RATIO & 1))
		f[OMS_FILL_F_FILL_RATIO * stride] = q->fill_ratio_pm;
	if (!(skip >> OMS_FILL_F_QUOTE_AGE & 1))
		f[OMS_FILL_F_QUOTE_AGE * stride] = (int64_t)(q->quote_age_ns / 1000);
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
	prep_divisors(&op);
	order_features(&op, f, 1);
	return quote_features(&op, &q, 0, f, 1);
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

/* Features each venue brings (the others are the order's). */
enum {
	VENUE_FEATURES = 1u << OMS_FILL_F_VENUE | 1u << OMS_FILL_F_OWN_OFF | 1u << OMS_FILL_F_CONTRA |
			 1u << OMS_FILL_F_SPREAD | 1u << OMS_FILL_F_OWN_QTY |
			 1u << OMS_FILL_F_CONTRA_QTY | 1u << OMS_FILL_F_IMBALANCE |
			 1u << OMS_FILL_F_LATENCY | 1u << OMS_FILL_F_FILL_RATIO |
			 1u << OMS_FILL_F_QUOTE_AGE,
	ORDER_FEATURES = 1u << OMS_FILL_F_SIDE | 1u << OMS_FILL_F_TIF | 1u << OMS_FILL_F_TOD,
	/* candidates for the key: few bins, one value per venue or per order */
	KEY_FEATURES = 1u << OMS_FILL_F_VENUE | ORDER_FEATURES,
	/* quotients: of the tick, of the order's quantity */
	BY_TICK = 1u << OMS_FILL_F_OWN_OFF | 1u << OMS_FILL_F_CONTRA | 1u << OMS_FILL_F_SPREAD,
	BY_QTY = 1u << OMS_FILL_F_OWN_QTY | 1u << OMS_FILL_F_CONTRA_QTY,
};

static uint32_t nbins(const struct oms_fill_model *m, uint32_t k)
{
	return k >= OMS_FILL_FEATURES ? 1u : m->n_edges[k] + 1u;
}

/* Every value venue feature k can take, whatever the input (quote_features):
 * a range holding them all cannot refuse, and a feature no table reads
 * with such a range need not be computed.  0 if there is no such bound. */
static int feature_domain(uint32_t k, int64_t *lo, int64_t *hi)
{
	switch (k) {
	case OMS_FILL_F_OWN_QTY:
	case OMS_FILL_F_CONTRA_QTY:
		*lo = 0, *hi = (int64_t)UINT32_MAX * 100;
		return 1;
	case OMS_FILL_F_IMBALANCE:
		*lo = -100, *hi = 100;
		return 1;
	case OMS_FILL_F_LATENCY:
	case OMS_FILL_F_QUOTE_AGE:
		*lo = 0, *hi = (int64_t)(UINT64_MAX / 1000);
		return 1;
	case OMS_FILL_F_FILL_RATIO:
		*lo = 0, *hi = UINT32_MAX;
		return 1;
	}
	return 0;
}

/* Partially evaluate the sealed tables for every combination of the bins of
 * the features in `key` (struct oms_fill_model, "the tables partially
 * evaluated"): each table becomes a table of its features outside the key,
 * or a constant; with `merge`, tables of the same features add up into one
 * and a one-feature table into a pair that reads its feature.  Each cell
 * holds the same integer sum the tables give.  -1 if the combinations do
 * not fit or a cell would overflow (nothing of the layout is set then). */
static int specialise(struct oms_fill_model *m, uint32_t key, int merge)
{
	const uint8_t z = OMS_FILL_ZERO;
	uint8_t ra[OMS_FILL_TABLES], rb[OMS_FILL_TABLES], sa[OMS_FILL_TABLES], sb[OMS_FILL_TABLES];
	int32_t to[OMS_FILL_TABLES];
	uint32_t into[OMS_FILL_TABLES], nx[OMS_FILL_TABLES], soff[OMS_FILL_TABLES];
	uint32_t radix[OMS_FILL_FEATURES] = {0};
	uint32_t nr = 0, ns = 0, cells = 1, combos = 1, base, bins = 0;

	for (uint32_t i = 0; i < m->n_lookups; i++) {
		const struct oms_fill_lookup *t = &m->lookups[i];
		uint8_t x = key >> t->a & 1 ? z : t->a;
		uint8_t y = t->b == OMS_FILL_FEATURES || key >> t->b & 1 ? z : t->b;
		uint32_t r = nr;

		if (x == z)
			x = y, y = z;
		to[i] = -1;
		if (x == z)
			continue; /* key features only: the combination's constant */
		if (merge && y != z && y < x) {
			uint8_t s = x;
			x = y, y = s;
		}
		for (uint32_t j = 0; merge && j < nr; j++)
			if (ra[j] == x && rb[j] == y)
				r = j;
		if (r == nr)
			ra[nr] = x, rb[nr++] = y;
		to[i] = (int32_t)r;
	}
	for (uint32_t r = 0; r < nr; r++) {
		into[r] = r;
		for (uint32_t j = 0; merge && rb[r] == z && j < nr; j++)
			if (rb[j] != z && (ra[j] == ra[r] || rb[j] == ra[r])) {
				into[r] = j;
				break;
			}
	}
	for (uint32_t r = 0; r < nr; r++)
		if (into[r] == r) {
			nx[r] = ns;
			sa[ns] = ra[r], sb[ns] = rb[r], soff[ns++] = cells;
			cells += nbins(m, ra[r]) * nbins(m, rb[r]);
		}
	cells = (cells + 15) & ~15u; /* each combination on its own cache lines */
	for (uint32_t k = 0; k < OMS_FILL_FEATURES; k++)
		if (key >> k & 1) {
			radix[k] = cells * combos;
			combos *= nbins(m, k);
		}
	base = (uint32_t)((64 - ((uintptr_t)m->spec_w & 63)) & 63) / sizeof(int32_t);
	if ((uint64_t)combos * cells + base > OMS_FILL_SPEC_CELLS)
		return -1;
	memset(m->spec_w, 0, sizeof(m->spec_w));
	for (uint32_t c = 0; c < combos; c++) {
		uint32_t kb[OMS_FILL_FEATURES] = {0}; /* the key's bins; others unused */
		int32_t *w = m->spec_w + base + c * cells;

		for (uint32_t k = 0, rest = c; k < OMS_FILL_FEATURES; k++)
			if (key >> k & 1) {
				kb[k] = rest % nbins(m, k);
				rest /= nbins(m, k);
			}
		for (uint32_t i = 0; i < m->n_lookups; i++) {
			const struct oms_fill_lookup *t = &m->lookups[i];
			const int32_t *src = m->w + t->offset;
			uint32_t r = to[i] < 0 ? 0 : nx[into[to[i]]];
			uint32_t nu = to[i] < 0 ? 1 : nbins(m, sa[r]), nv = to[i] < 0 ? 1 : nbins(m, sb[r]);

			/* cell (u, v) of the reduced table: the bins of its features */
			for (uint32_t u = 0; u < nu; u++)
				for (uint32_t v = 0; v < nv; v++) {
					uint32_t i_a = key >> t->a & 1 ? kb[t->a] : t->a == sa[r] ? u : v;
					uint32_t j_b = t->b == OMS_FILL_FEATURES ? 0
						       : key >> t->b & 1 ? kb[t->b]
						       : t->b == sa[r] ? u : v;
					int32_t *cell = to[i] < 0 ? w : w + soff[r] + u * nv + v;
					int64_t sum = (int64_t)*cell + src[i_a * t->stride + j_b];

					if (sum > INT32_MAX || sum < INT32_MIN)
						return -1;
					*cell = (int32_t)sum;
				}
		}
	}
	m->key_mask = key;
	m->n_spec = ns;
	m->spec_base = base;
	m->combo_cells = cells;
	memcpy(m->radix, radix, sizeof(radix));
	bins = key & 1u << OMS_FILL_F_VENUE;
	for (uint32_t r = 0; r < ns; r++) {
		bins |= 1u << sa[r] | (sb[r] == z ? 0 : 1u << sb[r]);
		m->spec[r] = (struct oms_fill_lookup){.offset = soff[r],
						       .stride = (uint16_t)nbins(m, sb[r]),
						       .a = sa[r], .b = sb[r]};
	}
	m->bin_mask = bins;
	return 0;
}

/* The most specialised layout that fits: as many key features as possible,
 * the venue first; with none, the sealed tables as they are. */
static void specialise_best(struct oms_fill_model *m)
{
	uint32_t all = m->used & KEY_FEATURES;

	for (int score = 2 * __builtin_popcount(all) + 1; score >= 0; score--)
		for (uint32_t key = all;; key = (key - 1) & all) {
			int ks = 2 * __builtin_popcount(key) + (int)(key & 1u << OMS_FILL_F_VENUE ? 1 : 0);

			if (ks == score && !specialise(m, key, 1))
				return;
			if (!key)
				break;
		}
	specialise(m, 0, 0); /* one cell from one table each: fits, cannot overflow */
}

/* Which venue features can refuse an input, and which need not be computed. */
static void mask_features(struct oms_fill_model *m)
{
	m->range_mask = 0;
	m->skip_mask = 0;
	for (uint32_t k = 0; k < OMS_FILL_FEATURES; k++) {
		int64_t lo, hi;

		if (!(VENUE_FEATURES >> k & 1))
			continue;
		if (!feature_domain(k, &lo, &hi) || m->lo[k] > lo || m->hi[k] < hi)
			m->range_mask |= 1u << k;
		else if (!(m->bin_mask >> k & 1))
			m->skip_mask |= 1u << k;
	}
}

/* The bounds the vector path needs (struct oms_fill_model, scaled_max). */
static uint64_t magnitude(int64_t v)
{
	return v < 0 ? (uint64_t)-(v + 1) + 1 : (uint64_t)v;
}

static int64_t clamp101(int64_t v)
{
	return v < -101 ? -101 : v > 101 ? 101 : v;
}

static void vector_bounds(struct oms_fill_model *m)
{
	m->scaled_max[0] = m->scaled_max[1] = 0;
	for (uint32_t k = 0; k < OMS_FILL_FEATURES; k++) {
		uint64_t *mx = &m->scaled_max[BY_TICK >> k & 1 ? 0 : 1];

		if (!((BY_TICK | BY_QTY) >> k & 1))
			continue;
		for (uint32_t j = 0; (m->bin_mask >> k & 1) && j < m->n_edges[k]; j++)
			if (magnitude(m->edges[k][j]) > *mx)
				*mx = magnitude(m->edges[k][j]);
		if (m->range_mask >> k & 1) {
			if (magnitude(m->lo[k]) > *mx)
				*mx = magnitude(m->lo[k]);
			if (magnitude(m->hi[k] + 1) > *mx)
				*mx = magnitude(m->hi[k] + 1);
		}
	}
	for (uint32_t j = 0; j < OMS_FILL_EDGES; j++)
		m->imb_edges[j] = clamp101(m->edges[OMS_FILL_F_IMBALANCE][j]);
	m->imb_lo = clamp101(m->lo[OMS_FILL_F_IMBALANCE]);
	m->imb_hi = clamp101(m->hi[OMS_FILL_F_IMBALANCE]);
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
	specialise_best(m);
	mask_features(m);
	vector_bounds(m);
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

static inline int32_t logistic(const struct oms_fill_model *m, int64_t z)
{
	const int64_t zmax = (int64_t)8 << OMS_FILL_Q;

	z = (z < -zmax ? -zmax : z > zmax ? zmax : z) + zmax;
	uint32_t i = (uint32_t)(z >> OMS_FILL_LUT_SHIFT);
	int64_t frac = z & ((1 << OMS_FILL_LUT_SHIFT) - 1);
	int64_t lo = m->lut[i], hi = m->lut[i + 1 < OMS_FILL_LUT ? i + 1 : i];

	return (int32_t)(lo + (((hi - lo) * frac) >> OMS_FILL_LUT_SHIFT));
}

/* Venues evaluated side by side (docs/fill-model.md "In the core").
 *
 * The scalar way, a venue at a time: its features, range check, bins, the
 * cells of the reduced tables, the logistic.
 *
 * With AVX-512, up to 8 venues as the lanes of one vector: each feature a
 * row of 8 venues, built in registers; its range check and bins by compares
 * of the row against each edge (a bin is the count of edges at or below the
 * value), for all venues at once; the cell indexes likewise; the cells and
 * the logistic a venue at a time (a gather of a few lanes costs more here
 * than the loads).  A feature that is a quotient, floor(a / d) with d > 0
 * (the tick, the order's quantity, the book's size), is never divided:
 * floor(a / d) >= e exactly when a >= e x d, so its row holds a and its
 * edges are multiplied by d, once per order for the tick and the quantity.
 * When a product could overflow, the order is evaluated the scalar way.
 * Both ways give the same integers (tests/test_fill_model.py builds both). */

/* Every venue refused (-1); 0 answered.  Not at the start of every call:
 * the vector path writes each answer or refusal once. */
static inline uint32_t refuse_all(int32_t *p, uint32_t n)
{
	for (uint32_t v = 0; v < n; v++)
		p[v] = -1;
	return 0;
}

static inline uint32_t eval_venues_scalar(const struct oms_fill_model *m,
					  const struct order_prep *op, const uint32_t *obin,
					  uint32_t base, const struct oms_fill_quote *q, uint32_t n,
					  int32_t *p)
{
	uint32_t bin[OMS_FILL_ZERO + 1], answered = 0;
	const uint32_t venue_bins = m->bin_mask & VENUE_FEATURES;

	memcpy(bin, obin, sizeof(bin));
	for (uint32_t v = 0; v < n; v++) {
		int64_t f[OMS_FILL_FEATURES] = {0}; /* skipped ones stay 0 */
		uint64_t out = 0;

		if (q[v].venue >= m->n_venues || quote_features(op, &q[v], m->skip_mask, f, 1))
			continue;
		for (uint32_t k = 0; k < OMS_FILL_FEATURES; k++)
			if (m->range_mask >> k & 1)
				out |= (uint64_t)(f[k] < m->lo[k]) | (uint64_t)(f[k] > m->hi[k]);
		if (out)
			continue;
		for (uint32_t k = 0; k < OMS_FILL_FEATURES; k++)
			if (venue_bins >> k & 1)
				bin[k] = bin_k(m, (int)k, f[k]);
		uint32_t at = base;
		if (m->key_mask >> OMS_FILL_F_VENUE & 1)
			at += bin[OMS_FILL_F_VENUE] * m->radix[OMS_FILL_F_VENUE];
		const int32_t *w = m->spec_w + at;
		int64_t z = w[0]; /* the combination's constant */

		for (uint32_t t = 0; t < m->n_spec; t++) {
			const struct oms_fill_lookup *s = &m->spec[t];

			z += w[s->offset + bin[s->a] * s->stride + bin[s->b]];
		}
		p[v] = logistic(m, m->bias + z);
		answered++;
	}
	return answered;
}

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define VECTOR_PATH 1

enum { ROW_IMB_SUM = OMS_FILL_FEATURES }; /* the imbalance's divisor: own + contra size */

/* The edges and range of the features divided by the tick or the order's
 * quantity, multiplied by it: floor(a / d) >= e iff a >= e d, and
 * floor(a / d) <= hi iff a <= (hi + 1) d - 1.  -1 if a product could
 * overflow. */
struct scaled {
	int64_t e[OMS_FILL_FEATURES][OMS_FILL_EDGES] __attribute__((aligned(64)));
	int64_t lo[OMS_FILL_FEATURES], hi[OMS_FILL_FEATURES];
};

static inline int scale_edges(const struct oms_fill_model *m, const struct oms_fill_order *o,
			      struct scaled *s)
{
	uint64_t r;

	if (__builtin_umull_overflow(m->scaled_max[0], (uint64_t)o->tick, &r) || r > INT64_MAX ||
	    __builtin_umull_overflow(m->scaled_max[1], o->qty, &r) || r > INT64_MAX)
		return -1;
#pragma GCC unroll 16
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		if (!((BY_TICK | BY_QTY) >> k & 1))
			continue;
		const int64_t d = BY_TICK >> k & 1 ? o->tick : (int64_t)o->qty;
		const __m512i vd = _mm512_set1_epi64(d);

		/* the padding slots wrap around; no compare reads them */
		_mm512_store_si512((void *)s->e[k],
				   _mm512_mullo_epi64(_mm512_loadu_si512((const void *)m->edges[k]), vd));
		_mm512_store_si512((void *)(s->e[k] + 8),
				   _mm512_mullo_epi64(_mm512_loadu_si512((const void *)(m->edges[k] + 8)), vd));
		/* only read where the range can refuse (else it may overflow) */
		s->lo[k] = (int64_t)((uint64_t)m->lo[k] * (uint64_t)d);
		s->hi[k] = (int64_t)((uint64_t)m->hi[k] * (uint64_t)d + (uint64_t)d - 1);
	}
	return 0;
}

/* One width of the vector path (cdefs/fill_model_lanes.h), then the other. */
#define LANES 4
#define VEC __m256i
#define V_ZERO() _mm256_setzero_si256()
#define V_SET1(x) _mm256_set1_epi64x(x)
#define V_MASK_SET1 _mm256_mask_set1_epi64
#define V_TEST _mm256_test_epi64_mask
#define V_CMPLT_EPU _mm256_cmplt_epu64_mask
#define V_SUB _mm256_sub_epi64
#define V_ADD _mm256_add_epi64
#define V_MULLO _mm256_mullo_epi64
#define V_MUL_EPU32 _mm256_mul_epu32
#define V_CMPLT _mm256_cmplt_epi64_mask
#define V_CMPGT _mm256_cmpgt_epi64_mask
#define V_CMPGE _mm256_cmpge_epi64_mask
#define V_MASK_ADD _mm256_mask_add_epi64
#define V_STORE(p, v) _mm256_store_si256((__m256i *)(void *)(p), v)
#define V_BLEND _mm256_mask_blend_epi64
#define V_XOR _mm256_xor_si256
#include "fill_model_lanes.h"

#define LANES 8
#define VEC __m512i
#define V_ZERO() _mm512_setzero_si512()
#define V_SET1(x) _mm512_set1_epi64(x)
#define V_MASK_SET1 _mm512_mask_set1_epi64
#define V_TEST _mm512_test_epi64_mask
#define V_CMPLT_EPU _mm512_cmplt_epu64_mask
#define V_SUB _mm512_sub_epi64
#define V_ADD _mm512_add_epi64
#define V_MULLO _mm512_mullo_epi64
#define V_MUL_EPU32 _mm512_mul_epu32
#define V_CMPLT _mm512_cmplt_epi64_mask
#define V_CMPGT _mm512_cmpgt_epi64_mask
#define V_CMPGE _mm512_cmpge_epi64_mask
#define V_MASK_ADD _mm512_mask_add_epi64
#define V_STORE(p, v) _mm512_store_si512((void *)(p), v)
#define V_BLEND _mm512_mask_blend_epi64
#define V_XOR _mm512_xor_si512
#include "fill_model_lanes.h"
#endif

uint32_t oms_fill_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			const struct oms_fill_quote *q, uint32_t n, int32_t *p)
{
	struct order_prep op;
	int64_t f[OMS_FILL_FEATURES];
	uint32_t bin[OMS_FILL_ZERO + 1] = {0}; /* the order's own features'; 0 for the others */
	uint32_t base = m->spec_base;

	if (prep_order(o, &op))
		return refuse_all(p, n);
	order_features(&op, f, 1);
	/* checked, binned and placed in the combination once for every venue */
#pragma GCC unroll 16
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		if (!(ORDER_FEATURES >> k & 1))
			continue;
		if (f[k] < m->lo[k] || f[k] > m->hi[k])
			return refuse_all(p, n);
		if ((m->bin_mask | m->key_mask) >> k & 1)
			bin[k] = bin_k(m, k, f[k]);
		if (m->key_mask >> k & 1) {
			base += bin[k] * m->radix[k];
			bin[k] = 0; /* in the combination: no table reads it */
		}
	}
#ifdef VECTOR_PATH
	struct scaled s;

	if (!scale_edges(m, o, &s)) {
		uint32_t answered = 0;

		if (n <= 4)
			return eval_venues_4(m, &op, &s, bin, base, q, n, p);
		for (uint32_t v = 0; v < n; v += 8)
			answered += eval_venues_8(m, &op, &s, bin, base, q + v, n - v < 8 ? n - v : 8,
						  p + v);
		return answered;
	}
#endif
	prep_divisors(&op);
	refuse_all(p, n);
	return eval_venues_scalar(m, &op, bin, base, q, n, p);
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
