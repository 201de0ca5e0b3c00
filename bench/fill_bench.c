/* The fill-probability model's cost alone (cdefs/fill_model.c,
 * docs/fill-model.md "In the core"): three venues' probabilities for an
 * order, the way the router asks (oms_fill_probs), on 4096 varied orders
 * and books in turn so that bins and branches change from one to the next;
 * timed with the TSC one decision at a time.  Built with -DFILL_BEFORE and
 * an earlier evaluator (bench/run_fill_bench.py --before REF, its symbols
 * renamed before_*), it times that one per venue on the same inputs, in
 * alternate blocks of the same run, checks both give the same answers and
 * prints the ratios.  Prints one "name value" line per figure.
 * Usage: fill_bench DECISIONS */
#include <stdio.h>
#include <stdlib.h>

#include "fill_bench_model.h"
#include "tsc.h"

#define VENUES 3
#define INPUTS 4096
#define BLOCK 1000

#ifdef FILL_BEFORE
int32_t before_oms_fill_prob(const struct oms_fill_model *m, const struct oms_fill_input *in);
int before_oms_fill_model_seal(struct oms_fill_model *m);
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

#ifdef FILL_BEFORE
static void before_probs(const struct oms_fill_model *m, int i, int32_t *p)
{
	for (int v = 0; v < VENUES; v++) {
		const struct oms_fill_order *o = &orders[i];
		const struct oms_fill_quote *q = &quotes[i][v];
		struct oms_fill_input in = {
			.price = o->price, .bid_px = q->bid_px, .ask_px = q->ask_px, .tick = o->tick,
			.rtt_ewma_ns = q->rtt_ewma_ns, .quote_age_ns = q->quote_age_ns,
			.tod_ns = o->tod_ns, .qty = o->qty, .bid_qty = q->bid_qty,
			.ask_qty = q->ask_qty, .fill_ratio_pm = q->fill_ratio_pm, .venue = q->venue,
			.buy = o->buy, .ioc = o->ioc};
		p[v] = before_oms_fill_prob(m, &in);
	}
}
#endif

static void report(const char *name, uint64_t *cyc, uint32_t n, double ghz, double *p50,
		   double *p99)
{
	qsort(cyc, n, sizeof(*cyc), cmp_u64);
	*p50 = cyc[n / 2] / ghz;
	*p99 = cyc[(uint64_t)n * 99 / 100] / ghz;
	printf("%s_ns_p50 %.1f\n%s_ns_p99 %.1f\n", name, *p50, name, *p99);
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000000;
	static struct oms_fill_model fm, before;
	uint64_t *now = malloc((size_t)n * sizeof(*now)), *was = malloc((size_t)n * sizeof(*was));
	uint64_t answered = 0, differ = 0, nb = 0, nn = 0;
	int64_t psum = 0;

	if (!now || !was)
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
	for (uint32_t i = 0; i < n; i++) {
		int k = (int)(i % INPUTS);
		int32_t p[VENUES];
#ifdef FILL_BEFORE
		if (i / BLOCK % 2) {
			int32_t pb[VENUES], pn[VENUES];
			uint64_t t0 = tsc();
			before_probs(&before, k, pb);
			uint64_t t1 = tsc();
			was[nb++] = t1 - t0;
			oms_fill_probs(&fm, &orders[k], quotes[k], VENUES, pn);
			for (int v = 0; v < VENUES; v++)
				differ += pb[v] != pn[v];
			continue;
		}
#endif
		uint64_t t0 = tsc();
		answered += oms_fill_probs(&fm, &orders[k], quotes[k], VENUES, p);
		uint64_t t1 = tsc();
		now[nn++] = t1 - t0;
		for (int v = 0; v < VENUES; v++)
			psum += p[v];
	}
	double ghz = tsc_ghz(), p50, p99, b50, b99;
	printf("fill3_decisions %llu\nfill3_answered %llu\n", (unsigned long long)nn,
	       (unsigned long long)answered);
	report("fill3", now, (uint32_t)nn, ghz, &p50, &p99);
#ifdef FILL_BEFORE
	report("fill3_before", was, (uint32_t)nb, ghz, &b50, &b99);
	printf("fill3_before_differ %llu\nfill3_ratio_p50 %.2f\nfill3_ratio_p99 %.2f\n",
	       (unsigned long long)differ, p50 / b50, p99 / b99);
#else
	(void)b50, (void)b99, (void)nb, (void)was;
#endif
	fprintf(stderr, "checksum %lld\n", (long long)psum);
	free(now);
	free(was);
	return differ == 0 && answered * 10 > (uint64_t)nn * VENUES * 5 ? 0 : 2;
}
