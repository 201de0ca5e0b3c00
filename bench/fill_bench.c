/* The fill-probability model's cost alone (cdefs/fill_model.c,
 * docs/fill-model.md "In the core"): three venues' probabilities for an
 * order, the way the router asks (oms_fill_probs), on 4096 varied orders
 * and books in turn so that bins and branches change from one to the next.
 * Timed two ways with the TSC:
 *   - one decision at a time (fill3_ns_*), beside an empty call timed the
 *     same way in the same run (empty_ns_*: the fenced reads and a call,
 *     what the first figure carries on top of the model's work);
 *   - blocks of BLOCK16 consecutive decisions between two reads, per
 *     decision (fill3_block_ns_*: the reads' own cost and their 10 ns
 *     granularity divided by 16).
 * Built with -DFILL_BEFORE and an earlier evaluator (bench/run_fill_bench.py
 * --before REF, its symbols renamed before_*), it times that one on the same
 * inputs both ways, in alternate stretches of the same run, checks both give
 * the same answers and prints the ratios.  Prints one "name value" line per
 * figure.  Usage: fill_bench DECISIONS */
#include <stdio.h>
#include <stdlib.h>

#include "fill_bench_model.h"
#include "tsc.h"

#define VENUES 3
#define INPUTS 4096
#define STRETCH 1024 /* decisions timed one way before switching evaluator */
#define BLOCK16 16

#ifdef FILL_BEFORE
int before_oms_fill_model_seal(struct oms_fill_model *m);
#ifdef FILL_BEFORE_PROBS
uint32_t before_oms_fill_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			       const struct oms_fill_quote *q, uint32_t n, int32_t *p);
#else
int32_t before_oms_fill_prob(const struct oms_fill_model *m, const struct oms_fill_input *in);
#endif
#endif

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct oms_fill_order orders[INPUTS];
static struct oms_fill_quote quotes[INPUTS][VENUES];

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Orders around a cent-tick book: a few ticks either side of the touch,
 * sizes, depths and latencies over the model's bins. */
static void make_inputs(void)
{
	uint64_t s = 88172645463325252ull;
	for (int i = 0; i < INPUTS; i++) {
		int64_t tick = 1000000, bid = (int64_t)(5000 + rnd(&s) % 20000) * tick;
		int buy = rnd(&s) & 1;
		orders[i] = (struct oms_fill_order){
			.tick = tick, .tod_ns = 34200000000000ull + rnd(&s) % 23400000000000ull,
			.qty = (uint32_t)(100 * (1 + rnd(&s) % 20)), .buy = (uint8_t)buy,
			.ioc = (uint8_t)(rnd(&s) % 4 == 0)};
		for (int v = 0; v < VENUES; v++) {
			int64_t b = bid + (int64_t)(rnd(&s) % 3) * tick;
			quotes[i][v] = (struct oms_fill_quote){
				.bid_px = b, .ask_px = b + (int64_t)(1 + rnd(&s) % 4) * tick,
				.rtt_ewma_ns = 20000 + rnd(&s) % 150000000,
				.bid_qty = (uint32_t)(1 + rnd(&s) % 20000),
				.ask_qty = (uint32_t)(1 + rnd(&s) % 20000),
				.fill_ratio_pm = (uint32_t)(rnd(&s) % 1001), .venue = (uint16_t)v};
		}
		int64_t off = ((int64_t)(rnd(&s) % 9) - 3) * tick;
		orders[i].price = buy ? bid + off : bid + tick - off;
	}
}

/* The timing's own cost: the same call shape doing nothing. */
__attribute__((noinline)) static uint32_t empty_probs(const struct oms_fill_model *m,
						      const struct oms_fill_order *o,
						      const struct oms_fill_quote *q, uint32_t n,
						      int32_t *p)
{
	__asm__ volatile("" : : "r"(m), "r"(o), "r"(q), "r"(n), "r"(p) : "memory");
	return 0;
}

#ifdef FILL_BEFORE
#ifdef FILL_BEFORE_PROBS
#define before_probs before_oms_fill_probs
#else
/* An evaluator from before the one-call interface: venue by venue. */
static uint32_t before_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			     const struct oms_fill_quote *q, uint32_t n, int32_t *p)
{
	uint32_t answered = 0;

	for (uint32_t v = 0; v < n; v++) {
		struct oms_fill_input in = {
			.price = o->price, .bid_px = q[v].bid_px, .ask_px = q[v].ask_px,
			.tick = o->tick, .rtt_ewma_ns = q[v].rtt_ewma_ns,
			.quote_age_ns = q[v].quote_age_ns, .tod_ns = o->tod_ns, .qty = o->qty,
			.bid_qty = q[v].bid_qty, .ask_qty = q[v].ask_qty,
			.fill_ratio_pm = q[v].fill_ratio_pm, .venue = q[v].venue, .buy = o->buy,
			.ioc = o->ioc};
		p[v] = before_oms_fill_prob(m, &in);
		answered += p[v] >= 0;
	}
	return answered;
}
#endif
#endif

typedef uint32_t probs_fn(const struct oms_fill_model *, const struct oms_fill_order *,
			  const struct oms_fill_quote *, uint32_t, int32_t *);

struct series {
	uint64_t *one, *block; /* cycles of one decision; of a block, per decision x 16 */
	uint32_t n_one, n_block;
	uint64_t answered;
	int64_t psum;
};

/* STRETCH decisions from input `at` on: one at a time, then the same
 * inputs again in blocks of BLOCK16. */
static void stretch(probs_fn *fn, const struct oms_fill_model *m, uint32_t at, struct series *s)
{
	int32_t p[VENUES];

	for (uint32_t i = 0; i < STRETCH; i++) {
		uint32_t k = (at + i) % INPUTS;
		uint64_t t0 = tsc();
		s->answered += fn(m, &orders[k], quotes[k], VENUES, p);
		uint64_t t1 = tsc();
		s->one[s->n_one++] = t1 - t0;
		s->psum += p[0] + p[1] + p[2];
	}
	for (uint32_t i = 0; i < STRETCH; i += BLOCK16) {
		uint64_t t0 = tsc();
		for (uint32_t j = 0; j < BLOCK16; j++) {
			uint32_t k = (at + i + j) % INPUTS;
			fn(m, &orders[k], quotes[k], VENUES, p);
			__asm__ volatile("" : : "r"(p) : "memory");
		}
		uint64_t t1 = tsc();
		s->block[s->n_block++] = t1 - t0;
	}
}

static void report(const char *name, uint64_t *cyc, uint32_t n, double per, double ghz,
		   double *p50, double *p99)
{
	qsort(cyc, n, sizeof(*cyc), cmp_u64);
	*p50 = cyc[n / 2] / per / ghz;
	*p99 = cyc[(uint64_t)n * 99 / 100] / per / ghz;
	printf("%s_ns_p50 %.1f\n%s_ns_p99 %.1f\n", name, *p50, name, *p99);
}

static int alloc_series(struct series *s, uint32_t n)
{
	*s = (struct series){0};
	s->one = malloc((size_t)n * sizeof(*s->one));
	s->block = malloc((size_t)n * sizeof(*s->block));
	return s->one && s->block ? 0 : -1;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000000;
	static struct oms_fill_model fm, before;
	struct series now, was, empty;
	uint64_t differ = 0;
	double p50, p99, b50, b99;

	n = (n + STRETCH - 1) / STRETCH * STRETCH;
	if (alloc_series(&now, n) || alloc_series(&was, n) || alloc_series(&empty, n))
		return 1;
	bench_fill_model(&fm, VENUES);
	before = fm;
	if (oms_fill_model_seal(&fm))
		return fprintf(stderr, "fill model\n"), 1;
#ifdef FILL_BEFORE
	if (before_oms_fill_model_seal(&before))
		return fprintf(stderr, "fill model (before)\n"), 1;
#endif
	make_inputs();
#ifdef FILL_BEFORE
	for (uint32_t k = 0; k < INPUTS; k++) {
		int32_t pb[VENUES], pn[VENUES];
		before_probs(&before, &orders[k], quotes[k], VENUES, pb);
		oms_fill_probs(&fm, &orders[k], quotes[k], VENUES, pn);
		for (int v = 0; v < VENUES; v++)
			differ += pb[v] != pn[v];
	}
#endif
	/* the evaluators in turn, a stretch each, over the same inputs */
	for (uint32_t i = 0; i < n; i += STRETCH) {
		stretch(oms_fill_probs, &fm, i, &now);
		stretch(empty_probs, &fm, i, &empty);
#ifdef FILL_BEFORE
		stretch(before_probs, &before, i, &was);
#endif
	}
	double ghz = tsc_ghz(), a50, a99, e50, e99;
	printf("fill3_decisions %u\nfill3_answered %llu\n", now.n_one,
	       (unsigned long long)now.answered);
	report("fill3", now.one, now.n_one, 1, ghz, &p50, &p99);
	report("fill3_block", now.block, now.n_block, BLOCK16, ghz, &a50, &a99);
	report("empty", empty.one, empty.n_one, 1, ghz, &e50, &e99);
	report("empty_block", empty.block, empty.n_block, BLOCK16, ghz, &e50, &e99);
#ifdef FILL_BEFORE
	report("fill3_before", was.one, was.n_one, 1, ghz, &b50, &b99);
	printf("fill3_ratio_p50 %.2f\nfill3_ratio_p99 %.2f\n", p50 / b50, p99 / b99);
	report("fill3_before_block", was.block, was.n_block, BLOCK16, ghz, &b50, &b99);
	printf("fill3_block_ratio_p50 %.2f\nfill3_block_ratio_p99 %.2f\n", a50 / b50, a99 / b99);
	printf("fill3_before_differ %llu\n", (unsigned long long)differ);
#else
	(void)b50, (void)b99, (void)was, (void)before;
#endif
	fprintf(stderr, "checksum %lld\n", (long long)now.psum);
	return differ == 0 && now.answered * 10 > (uint64_t)now.n_one * VENUES * 5 ? 0 : 2;
}
