/* The fill-probability model in the core (issue 9 item 3, docs/fill-model.md):
 * for a child order sent now to a venue, the probability that it fills
 * within the model's horizon, from binned additive tables of log-odds in
 * fixed point and a logistic lookup table.  No floats, no allocation, no
 * clock: the caller brings the venue's top of book, its state and the time.
 *
 * The tables come from a checksummed artefact (control/fill_artefact.py
 * validates it and fills this struct; its evaluator is the same integer
 * arithmetic, tests/test_fill_model_c.py holds the two to the same answers).
 *
 * Included from oms_core.h, so cffi binds it too. */
#ifndef OMS_FILL_MODEL_H
#define OMS_FILL_MODEL_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

enum {
	OMS_FILL_FEATURES = 13,
	OMS_FILL_EDGES = 16,     /* slots per feature; unused ones hold INT64_MAX */
	OMS_FILL_TABLES = 32,
	OMS_FILL_CELLS = 4096,
	OMS_FILL_Q = 16,         /* log-odds in Q16 */
	OMS_FILL_P_Q = 30,       /* probabilities in Q30 */
	OMS_FILL_LUT_SHIFT = 10, /* one lookup interval: 2^10 in Q16 */
	OMS_FILL_LUT = 1025,     /* log-odds -8 .. 8 */
	OMS_FILL_NO_B = 0xFF,    /* a one-feature table */
	OMS_FILL_MAX_VENUES = 64, /* core venue indexes the model can know */
	OMS_FILL_NO_SLOT = 0xFFFF,
	OMS_FILL_DIRECT = 256,   /* a feature whose edges span fewer values: bins by lookup */
	OMS_FILL_ZERO = 15,      /* a feature index whose bin is always 0: a one-feature table's b */
	OMS_FILL_SPEC_CELLS = 16384 + 16, /* the specialised tables, and a cache line to align them */
};

/* The features, in the dataset's column order (control/fill_dataset.py FEATURES). */
enum oms_fill_feature {
	OMS_FILL_F_VENUE, OMS_FILL_F_SIDE, OMS_FILL_F_OWN_OFF, OMS_FILL_F_CONTRA,
	OMS_FILL_F_SPREAD, OMS_FILL_F_OWN_QTY, OMS_FILL_F_CONTRA_QTY, OMS_FILL_F_IMBALANCE,
	OMS_FILL_F_LATENCY, OMS_FILL_F_FILL_RATIO, OMS_FILL_F_QUOTE_AGE, OMS_FILL_F_TIF,
	OMS_FILL_F_TOD,
};

/* One candidate: the order and what is known of the venue at decision time. */
struct oms_fill_input {
	int64_t price;          /* limit */
	int64_t bid_px, ask_px; /* the venue's top of book */
	int64_t tick;
	uint64_t rtt_ewma_ns;   /* the venue's acknowledgement round trip */
	uint64_t quote_age_ns;  /* now - the book's last change */
	uint64_t tod_ns;        /* time of day (ns since midnight) */
	uint32_t qty;
	uint32_t bid_qty, ask_qty;
	uint32_t fill_ratio_pm; /* the venue's recent fill ratio, per mille */
	uint16_t venue;         /* the model's venue slot (its artefact's order) */
	uint8_t buy;
	uint8_t ioc;
};

/* The same candidate split in two, for a decision over several venues: what
 * the order brings, evaluated once, and what each venue brings. */
struct oms_fill_order {
	int64_t price;          /* limit */
	int64_t tick;
	uint64_t tod_ns;        /* time of day (ns since midnight) */
	uint32_t qty;
	uint8_t buy;
	uint8_t ioc;
};

struct oms_fill_quote {
	int64_t bid_px, ask_px; /* the venue's top of book */
	uint64_t rtt_ewma_ns;
	uint64_t quote_age_ns;
	uint32_t bid_qty, ask_qty;
	uint32_t fill_ratio_pm;
	uint16_t venue;         /* the model's venue slot */
};

/* A sealed table: where bin (i, j) of its features is, w[offset + i * stride + j]. */
struct oms_fill_lookup {
	uint32_t offset;
	uint16_t stride;
	uint8_t a, b;           /* b OMS_FILL_FEATURES (always bin 0) for a one-feature table */
};

struct oms_fill_table {
	uint32_t offset;        /* first cell in w[] */
	uint16_t nb_b;          /* bins of feature b (1 for a one-feature table) */
	uint8_t a, b;           /* features; b OMS_FILL_NO_B for one */
};

struct oms_fill_model {
	uint64_t id;            /* the artefact's model id (first 64 bits of its SHA-256) */
	int32_t bias;           /* Q16 */
	uint32_t n_tables;
	uint32_t n_venues;
	uint32_t sealed;        /* set by oms_fill_model_seal */
	uint32_t used;          /* features the tables read (bit per feature), once sealed */
	uint32_t pad_;
	/* by the core's venue index: the model's venue slot, or OMS_FILL_NO_SLOT */
	uint16_t slot[OMS_FILL_MAX_VENUES];
	int64_t lo[OMS_FILL_FEATURES], hi[OMS_FILL_FEATURES]; /* answered range; hi < INT64_MAX */
	int64_t edges[OMS_FILL_FEATURES][OMS_FILL_EDGES];
	uint8_t n_edges[OMS_FILL_FEATURES];
	struct oms_fill_table tables[OMS_FILL_TABLES];
	int32_t w[OMS_FILL_CELLS];  /* Q16 log-odds */
	uint32_t lut[OMS_FILL_LUT]; /* Q30 probability at log-odds -8 + i/64 */
	/* Set by oms_fill_model_seal (docs/fill-model.md "In the core"): the
	 * tables as read, and for each feature whose edges span fewer than
	 * OMS_FILL_DIRECT values, its bin by value: bin = direct[k][v - base[k]],
	 * the index clamped (below the span: bin 0, above: every edge). */
	uint32_t direct_mask;
	uint32_t n_lookups;
	struct oms_fill_lookup lookups[OMS_FILL_TABLES];
	int64_t base[OMS_FILL_FEATURES];
	uint8_t direct[OMS_FILL_FEATURES][OMS_FILL_DIRECT];
	/* Set by oms_fill_model_seal (docs/fill-model.md "In the core"): the
	 * tables partially evaluated for each combination of the bins of the
	 * key features (the venue and the order's own: side, TIF, time of day),
	 * so that a venue reads only the tables of its other features: pairs
	 * of the same features merged, each one-feature table folded into a
	 * pair.  A combination's cells start at spec_w[spec_base + sum over key
	 * features k of bin(k) x radix[k]]: first its constant (the tables of
	 * key features alone), then spec[i] at its offset, b OMS_FILL_ZERO for
	 * a one-feature table. */
	uint32_t key_mask;      /* key features */
	uint32_t bin_mask;      /* features binned for the reduced tables (and the venue, a key) */
	uint32_t range_mask;    /* venue features whose range can refuse an input */
	uint32_t skip_mask;     /* venue features neither: not computed */
	uint32_t n_spec;
	uint32_t spec_base;     /* the first cell on a cache line, wherever the model lies */
	uint32_t combo_cells;
	uint32_t radix[OMS_FILL_FEATURES];
	struct oms_fill_lookup spec[OMS_FILL_TABLES];
	/* For the vector path, which compares a quotient's numerator with the
	 * edges times its divisor instead of dividing: the largest magnitude
	 * multiplied by the tick and by the order's quantity (an order whose
	 * products would overflow is evaluated the scalar way), and the
	 * imbalance's edges and range clamped to [-101, 101] (it lies in
	 * [-100, 99]: the same comparisons, products that cannot overflow). */
	uint64_t scaled_max[2];
	int64_t imb_edges[OMS_FILL_EDGES];
	int64_t imb_lo, imb_hi;
	int32_t spec_w[OMS_FILL_SPEC_CELLS];
};

/* The integer features of one candidate; -1 when the venue's book has an
 * empty side, or the quantity or tick is zero. */
int oms_fill_features(const struct oms_fill_input *in, int64_t f[OMS_FILL_FEATURES]);

/* Prepare a filled model for evaluation: the tables' bounds checked, unused
 * edge slots set to INT64_MAX, each one-feature table folded into a pair
 * table that reads the same feature, the tables partially evaluated for
 * each combination of the key features' bins (the same sums with fewer
 * lookups: docs/fill-model.md "In the core").  0 (also when already
 * sealed), or -1 if it is not consistent. */
int oms_fill_model_seal(struct oms_fill_model *m);

/* The probability in Q30 (0 .. 2^30), or -1 when a feature is out of the
 * model's range or the venue slot unknown: then the rule router decides. */
int32_t oms_fill_prob(const struct oms_fill_model *m, const struct oms_fill_input *in);

/* The probabilities of one order at n venues, into p[0 .. n-1] (each as
 * oms_fill_prob gives it, -1 included), with what depends on the order alone
 * computed once.  Returns how many answered. */
uint32_t oms_fill_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			const struct oms_fill_quote *q, uint32_t n, int32_t *p);

#endif
