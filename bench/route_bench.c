/* The cost of one smart-routing decision from the worker (cdefs/router.c,
 * docs/semantics.md "Smart order routing"): VENUES venues, each with a
 * feed whose books for SYMBOLS stocks are built from ITCH adds, and the
 * router asked for a venue for buy and sell limit orders over the symbols
 * in turn.  Each decision reads every venue's top of book (seqlock), its
 * health and the instrument's venue list, and writes the decision record;
 * timed with the TSC one by one (its ~20-cycle overhead included).
 * Then the fill-probability model on the same orders (cdefs/fill_model.c,
 * docs/fill-model.md): every venue's top of book read and its probability
 * evaluated, timed alone (fill_ns_*) and together with the routing
 * decision (route_fill_ns_*).
 * Prints one "name value" line per figure.  Usage: route_bench DECISIONS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "pipeline.h"
#include "tsc.h"
#include "fill_bench_model.h"

#define VENUES 3
#define SYMBOLS 64
#define LEVELS 10

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, v >> 16); be16(p + 2, (uint16_t)v); }
static void be64(uint8_t *p, uint64_t v) { be32(p, v >> 32); be32(p + 4, (uint32_t)v); }

/* One MoldUDP64 packet of one ITCH message into the feed. */
static void feed_msg(struct oms_feed *f, uint64_t *seq, const uint8_t *m, uint16_t len)
{
	uint8_t p[128] = "BENCH00001";
	be64(p + 10, (*seq)++);
	be16(p + 18, 1);
	be16(p + 20, len);
	memcpy(p + 22, m, len);
	oms_feed_process_packet(f, p, 22u + len, 1000);
}

static void symbol(char out[8], uint32_t s)
{
	char tmp[9];
	snprintf(tmp, sizeof(tmp), "S%03u    ", s);
	memcpy(out, tmp, 8);
}

/* Every venue's probability for the order: its book read, then the model,
 * the way the router asks (cdefs/fill_model.c fill_route_choose: one call,
 * the order's own part once). */
static int64_t fill_probs(const struct oms_fill_model *fm, struct oms_feed *const *feeds,
			  const struct sp_new_order *m, uint32_t s, uint64_t now)
{
	struct oms_fill_quote q[VENUES];
	int32_t p[VENUES];
	int64_t sum = 0;

	for (uint16_t v = 0; v < VENUES; v++) {
		struct oms_tob_view t;
		oms_tob_read(oms_feed_tob(feeds[v], s), &t);
		q[v] = (struct oms_fill_quote){
			.bid_px = t.bid_px, .ask_px = t.ask_px, .rtt_ewma_ns = 40000 + v * 1000,
			.quote_age_ns = now - t.last_ns, .bid_qty = t.bid_qty, .ask_qty = t.ask_qty,
			.fill_ratio_pm = 500, .venue = v};
	}
	struct oms_fill_order o = {.price = m->price, .tick = 1000000,
				   .tod_ns = 36000000000000ull, .qty = m->qty,
				   .buy = m->side == SP_SIDE_BUY, .ioc = m->tif == SP_TIF_IOC};
	if (oms_fill_probs(fm, &o, q, VENUES, p) < VENUES)
		return -1; /* every venue must answer for the figure to time the model */
	for (int v = 0; v < VENUES; v++)
		sum += p[v];
	return sum;
}

/* The generation: the symbols, smart routing over every venue (split across
 * up to `split`), and with `fm` the fill model (then the symbols' tick is the
 * books' cent). */
static int bench_gen(struct oms_core *c, const struct oms_fill_model *fm, uint32_t split)
{
	struct risk_gen *g = oms_gen_create(c, NULL);
	for (uint32_t s = 0; s < SYMBOLS; s++) {
		struct oms_instrument_config ic = {.tick_size = fm ? 1000000 : 0};
		symbol(ic.symbol, s);
		oms_gen_add_instrument(g, c, &ic);
	}
	struct oms_route_config rc = {.sor = 1};
	if (oms_gen_add_route(g, c, &rc) || oms_gen_set_sor_cost(g, 10000) ||
	    oms_gen_set_sor_split(g, split) || (fm && oms_gen_set_fill_model(g, fm, 5000000)))
		return -1;
	oms_gen_free(oms_core_publish(c, g));
	oms_core_take_generation(c);
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000000;
	/* argv[2]: split across up to this many venues, orders of 1000 shares
	 * that no venue shows alone (1: no split, orders of 100) */
	uint32_t split = argc > 2 ? (uint32_t)atoi(argv[2]) : 1;
	struct oms_core_config cc = {
		.ip = 0x0a000001, .strategy_port = 9000, .venue_port = 9100,
		.order_capacity = 1024, .max_sessions = 1, .max_venues = VENUES,
		.max_instruments = SYMBOLS, .tx_capacity = 64,
	};
	struct oms_core *c = oms_core_create(&cc);
	struct oms_session_config sc = {.id = 1, .ip = 0x0a000002, .port = 9001, .enabled = 1};
	if (!c || oms_core_add_session(c, &sc))
		return fprintf(stderr, "core\n"), 1;
	for (uint16_t v = 1; v <= VENUES; v++) {
		struct oms_venue_config vc = {.id = v, .ip = 0x0a000100u + v, .port = 9200};
		if (oms_core_add_venue(c, &vc))
			return fprintf(stderr, "venue\n"), 1;
	}
	if (bench_gen(c, NULL, split))
		return fprintf(stderr, "route\n"), 1;

	/* books: LEVELS levels a side around $100 + venue offsets */
	struct oms_feed *feeds[VENUES];
	for (uint32_t v = 0; v < VENUES; v++) {
		struct oms_feed_config fc = {
			.venue = (uint16_t)(v + 1), .ip = 0x0a000001, .port = 9102,
			.group_ip = 0xef010101u + v, .group_port = 26400,
			.max_symbols = SYMBOLS, .max_orders = 65536, .max_levels = 64,
		};
		feeds[v] = oms_feed_create(&fc);
		if (!feeds[v])
			return fprintf(stderr, "feed\n"), 1;
		uint64_t seq = 1, ref = 1;
		uint8_t m[64] = {0};
		/* subscribed before the session starts: else stale (late) */
		for (uint32_t s = 0; s < SYMBOLS; s++) {
			char sym[8];
			symbol(sym, s);
			oms_feed_subscribe(feeds[v], sym, s);
		}
		m[0] = 'S';
		m[11] = 'O';
		feed_msg(feeds[v], &seq, m, ITCH_SYSTEM_EVENT_LEN);
		for (uint32_t s = 0; s < SYMBOLS; s++) {
			char sym[8];
			symbol(sym, s);
			memset(m, 0, sizeof(m));
			m[0] = 'R';
			be16(m + 1, (uint16_t)(s + 1));
			memcpy(m + 11, sym, 8);
			feed_msg(feeds[v], &seq, m, ITCH_DIRECTORY_LEN);
			for (uint32_t l = 0; l < 2 * LEVELS; l++) {
				uint32_t px4 = 1000000 + (l < LEVELS ? -1 - (int)l : 1 + (int)(l - LEVELS)) *
					100 + v * 3 + s % 5;
				memset(m, 0, sizeof(m));
				m[0] = 'A';
				be16(m + 1, (uint16_t)(s + 1));
				be64(m + 11, ref++);
				m[19] = l < LEVELS ? 'B' : 'S';
				be32(m + 20, 100 * (1 + (l + v) % 7));
				memcpy(m + 24, sym, 8);
				be32(m + 32, px4);
				feed_msg(feeds[v], &seq, m, ITCH_ADD_LEN);
			}
		}
		oms_core_set_feed(c, (uint16_t)(v + 1), feeds[v]);
	}

	uint64_t *cyc = malloc((size_t)n * sizeof(*cyc));
	if (!cyc)
		return 1;
	struct sp_new_order m = {.account = 1, .ord_type = SP_ORD_LIMIT, .tif = SP_TIF_DAY,
				 .qty = split > 1 ? 1000 : 100};
	struct route_plan plan;
	uint64_t chosen = 0, children = 0;
	c->now_ns = 2000;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = i % SYMBOLS;
		symbol(m.symbol, s);
		m.cl_ord_id = i;
		m.side = (i & 1) ? SP_SIDE_SELL : SP_SIDE_BUY;
		m.price = (i & 1) ? 9990000000ll : 10010000000ll;
		uint64_t t0 = tsc();
		uint32_t v = router_choose(c, &c->sessions[0], &m, s, 0, &plan);
		uint64_t t1 = tsc();
		cyc[i] = t1 - t0;
		chosen += v != RISK_NIL;
		children += plan.n;
	}
	if (getenv("ROUTE_DEBUG")) {
		struct oms_route_decision d;
		oms_core_route_decisions(c, oms_core_route_seq(c), &d, 1);
		for (uint32_t k = 0; k < d.n_seen; k++)
			fprintf(stderr, "venue %u why %u px %lld qty %u\n", d.seen[k].venue,
				d.seen[k].why, (long long)d.seen[k].px, d.seen[k].qty);
	}
	double ghz = tsc_ghz();
	qsort(cyc, n, sizeof(*cyc), cmp_u64);
	printf("route_decisions %u\nroute_venues %u\nroute_chosen %llu\n", n, VENUES,
	       (unsigned long long)chosen);
	printf("route_split_max %u\nroute_children %llu\n", split, (unsigned long long)children);
	printf("route_cycles_p50 %llu\nroute_cycles_p99 %llu\n", (unsigned long long)cyc[n / 2],
	       (unsigned long long)cyc[(uint64_t)n * 99 / 100]);
	printf("route_ns_p50 %.1f\nroute_ns_p99 %.1f\n", cyc[n / 2] / ghz,
	       cyc[(uint64_t)n * 99 / 100] / ghz);

	static struct oms_fill_model fm;
	bench_fill_model(&fm, VENUES);
	if (oms_fill_model_seal(&fm))
		return fprintf(stderr, "fill model\n"), 1;
	uint64_t *both = malloc((size_t)n * sizeof(*both));
	int64_t psum = 0, answered = 0;
	if (!both)
		return 1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = i % SYMBOLS;
		symbol(m.symbol, s);
		m.cl_ord_id = i;
		m.side = (i & 1) ? SP_SIDE_SELL : SP_SIDE_BUY;
		m.price = (i & 1) ? 9990000000ll : 10010000000ll;
		uint64_t t0 = tsc();
		int64_t p = fill_probs(&fm, feeds, &m, s, c->now_ns);
		uint64_t t1 = tsc();
		router_choose(c, &c->sessions[0], &m, s, 0, &plan);
		uint64_t t2 = tsc();
		cyc[i] = t1 - t0;
		both[i] = t2 - t0;
		psum += p;
		answered += p >= 0;
	}
	qsort(cyc, n, sizeof(*cyc), cmp_u64);
	qsort(both, n, sizeof(*both), cmp_u64);
	printf("fill_answered %lld\nfill_ns_p50 %.1f\nfill_ns_p99 %.1f\n", (long long)answered,
	       cyc[n / 2] / ghz, cyc[(uint64_t)n * 99 / 100] / ghz);
	printf("route_fill_ns_p50 %.1f\nroute_fill_ns_p99 %.1f\n", both[n / 2] / ghz,
	       both[(uint64_t)n * 99 / 100] / ghz);

	/* the decision as the worker makes it with the model in the generation:
	 * the rules, then every venue's probability and expected value */
	if (bench_gen(c, &fm, split))
		return fprintf(stderr, "model generation\n"), 1;
	uint64_t by_model = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = i % SYMBOLS;
		symbol(m.symbol, s);
		m.cl_ord_id = i;
		m.side = (i & 1) ? SP_SIDE_SELL : SP_SIDE_BUY;
		m.price = (i & 1) ? 9990000000ll : 10010000000ll;
		uint64_t t0 = tsc();
		router_choose(c, &c->sessions[0], &m, s, 0, &plan);
		uint64_t t1 = tsc();
		cyc[i] = t1 - t0;
		struct oms_route_decision d;
		oms_core_route_decisions(c, oms_core_route_seq(c), &d, 1);
		by_model += d.by_model;
	}
	qsort(cyc, n, sizeof(*cyc), cmp_u64);
	printf("route_model_decisions %llu\nroute_model_ns_p50 %.1f\nroute_model_ns_p99 %.1f\n",
	       (unsigned long long)by_model, cyc[n / 2] / ghz, cyc[(uint64_t)n * 99 / 100] / ghz);
	free(both);
	free(cyc);
	for (uint32_t v = 0; v < VENUES; v++)
		oms_feed_destroy(feeds[v]);
	oms_core_destroy(c);
	return chosen == n && answered == n && by_model == n ? 0 : 2;
}
