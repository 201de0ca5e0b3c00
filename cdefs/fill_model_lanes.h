/* The vector path of cdefs/fill_model.c for one vector width: included
 * there once for 4 venues a vector (256 bits) and once for 8 (512 bits),
 * with LANES and the V_ operations defined for the width.  On this
 * machine (AMD EPYC, AVX-512 on 256-bit units) an operation on 8 lanes
 * costs two on 4, so up to 4 venues take the narrow one.  No include
 * guard: included once per width. */

#define LANES_FN(name) LANES_FN_(name, LANES)
#define LANES_FN_(name, n) LANES_FN__(name, n)
#define LANES_FN__(name, n) name##_##n

static inline uint32_t LANES_FN(eval_venues)(const struct oms_fill_model *m,
					     const struct order_prep *op, const struct scaled *s,
					     const uint32_t *obin, uint32_t base,
					     const struct oms_fill_quote *q, uint32_t n, int32_t *p)
{
	VEC row[OMS_FILL_FEATURES + 1], bin[OMS_FILL_ZERO + 1];
	VEC bid = V_ZERO(), ask = bid, bid_q = bid, ask_q = bid, venue = bid;
	VEC lat = bid, ratio = bid, age = bid;
	__mmask8 ok, bad = 0;
	const VEC one = V_SET1(1), hundred = V_SET1(100);

	/* the quotes' fields as rows of venues, built in registers (a vector
	 * load of scalar stores just made would wait for them to reach the
	 * cache); the features from them for all venues at once */
	for (uint32_t v = 0; v < n; v++) {
		const __mmask8 at = (__mmask8)(1u << v);

		bid = V_MASK_SET1(bid, at, q[v].bid_px);
		ask = V_MASK_SET1(ask, at, q[v].ask_px);
		bid_q = V_MASK_SET1(bid_q, at, q[v].bid_qty);
		ask_q = V_MASK_SET1(ask_q, at, q[v].ask_qty);
		venue = V_MASK_SET1(venue, at, q[v].venue);
		if (!(m->skip_mask >> OMS_FILL_F_LATENCY & 1))
			lat = V_MASK_SET1(lat, at, (int64_t)(q[v].rtt_ewma_ns / 1000));
		if (!(m->skip_mask >> OMS_FILL_F_FILL_RATIO & 1))
			ratio = V_MASK_SET1(ratio, at, q[v].fill_ratio_pm);
		if (!(m->skip_mask >> OMS_FILL_F_QUOTE_AGE & 1))
			age = V_MASK_SET1(age, at, (int64_t)(q[v].quote_age_ns / 1000));
	}
	/* a venue the model knows, with both sides of its book */
	ok = V_TEST(bid_q, bid_q) & V_TEST(ask_q, ask_q) &
	     V_CMPLT_EPU(venue, V_SET1(m->n_venues)) &
	     (__mmask8)((1u << n) - 1);
	if (!ok)
		return refuse_all(p, n);
	/* the side by blends and a sign, not branches: orders' sides alternate
	 * unpredictably */
	const __mmask8 sell = (__mmask8)-(int)!op->buy;
	const VEC price = V_SET1(op->price), neg = V_SET1(-(int64_t)!op->buy);
	const VEC own_px = V_BLEND(sell, bid, ask), con_px = V_BLEND(sell, ask, bid);
	const VEC own_q = V_BLEND(sell, bid_q, ask_q), con_q = V_BLEND(sell, ask_q, bid_q);

	row[OMS_FILL_F_VENUE] = venue;
	/* sgn x (price - px): negated, (x ^ -1) + 1, for a sell */
	row[OMS_FILL_F_OWN_OFF] = V_SUB(V_XOR(V_SUB(price, own_px), neg), neg);
	row[OMS_FILL_F_CONTRA] = V_SUB(V_XOR(V_SUB(price, con_px), neg), neg);
	row[OMS_FILL_F_SPREAD] = V_SUB(ask, bid);
	row[OMS_FILL_F_OWN_QTY] = V_MULLO(own_q, hundred);
	row[OMS_FILL_F_CONTRA_QTY] = V_MULLO(con_q, hundred);
	row[OMS_FILL_F_IMBALANCE] = V_MULLO(V_SUB(own_q, con_q), hundred);
	row[ROW_IMB_SUM] = V_ADD(own_q, con_q);
	row[OMS_FILL_F_LATENCY] = lat;
	row[OMS_FILL_F_FILL_RATIO] = ratio;
	row[OMS_FILL_F_QUOTE_AGE] = age;
	bin[OMS_FILL_ZERO] = V_ZERO();
	for (uint32_t rest = m->bin_mask & ORDER_FEATURES; rest; rest &= rest - 1)
		bin[__builtin_ctz(rest)] = V_SET1(obin[__builtin_ctz(rest)]);
#pragma GCC unroll 16
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		if (!(VENUE_FEATURES >> k & 1))
			continue;
		const VEC x = row[k];
		VEC b = V_ZERO();

		if (k == OMS_FILL_F_IMBALANCE) {
			/* floor(x / sum) against e: x against e x sum, e clamped */
			const VEC d = row[ROW_IMB_SUM];

			if (m->range_mask >> k & 1)
				bad |= V_CMPLT(x, V_MULLO(d, V_SET1(m->imb_lo))) |
				       V_CMPGT(x, V_SUB(V_MULLO(d, V_SET1(m->imb_hi + 1)), one));
			if (m->bin_mask >> k & 1)
				for (uint32_t j = 0; j < m->n_edges[k]; j++)
					b = V_MASK_ADD(b, V_CMPGE(x, V_MULLO(d, V_SET1(m->imb_edges[j]))), b, one);
		} else {
			const int scaled = (BY_TICK | BY_QTY) >> k & 1;
			const int64_t *e = scaled ? s->e[k] : m->edges[k];

			if (m->range_mask >> k & 1)
				bad |= V_CMPLT(x, V_SET1(scaled ? s->lo[k] : m->lo[k])) |
				       V_CMPGT(x, V_SET1(scaled ? s->hi[k] : m->hi[k]));
			if (m->bin_mask >> k & 1)
				for (uint32_t j = 0; j < m->n_edges[k]; j++)
					b = V_MASK_ADD(b, V_CMPGE(x, V_SET1(e[j])), b, one);
		}
		bin[k] = b;
	}
	ok &= (__mmask8)~bad;
	VEC at = V_SET1(base);

	if (m->key_mask >> OMS_FILL_F_VENUE & 1)
		at = V_ADD(at, V_MUL_EPU32(bin[OMS_FILL_F_VENUE],
					   V_SET1(m->radix[OMS_FILL_F_VENUE])));
	uint64_t cell[OMS_FILL_TABLES + 1][LANES] __attribute__((aligned(64)));

	V_STORE(cell[0], at); /* the combination's constant */
	for (uint32_t t = 0; t < m->n_spec; t++) {
		const struct oms_fill_lookup *sp = &m->spec[t];

		V_STORE(cell[t + 1], V_ADD(V_ADD(at, V_SET1(sp->offset)),
					   V_ADD(V_MUL_EPU32(bin[sp->a], V_SET1(sp->stride)),
						 bin[sp->b])));
	}
	for (uint32_t v = 0; v < n; v++) {
		int64_t z = 0;

		p[v] = -1;
		if (!(ok >> v & 1))
			continue;
		for (uint32_t t = 0; t <= m->n_spec; t++)
			z += m->spec_w[cell[t][v]];
		p[v] = logistic(m, m->bias + z);
	}
	return (uint32_t)__builtin_popcount(ok);
}

#undef LANES_FN
#undef LANES_FN_
#undef LANES_FN__
/* the parameters too: the file is included once per width */
#undef LANES
#undef VEC
#undef V_ZERO
#undef V_SET1
#undef V_MASK_SET1
#undef V_TEST
#undef V_CMPLT_EPU
#undef V_SUB
#undef V_ADD
#undef V_MULLO
#undef V_MUL_EPU32
#undef V_CMPLT
#undef V_CMPGT
#undef V_CMPGE
#undef V_MASK_ADD
#undef V_STORE
#undef V_BLEND
#undef V_XOR
