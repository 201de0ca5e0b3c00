/* Pre-trade risk benchmark: the full set of checks (cdefs/risk.c) per
 * order, alone, in cycles (TSC).  The tables are a configuration
 * generation built through the core's API, as the control plane does.
 *
 * Tables as a busy desk might have them: ACCOUNTS accounts, INSTRUMENTS
 * instruments with tick, lot, reference price and both price bands, a
 * max_position for every (account, instrument), a throttled session.
 * Orders are drawn up front (random account, instrument, side, price on
 * the tick inside the band, quantity in lots) so that every check runs and
 * passes - the longest path; IN_FLIGHT orders stay open, the oldest is
 * canceled (accounting update) as each new one enters, and a quarter of
 * the open orders get a Modify checked.  Timed, per order:
 *   new:    risk_check_new + risk_update of the accepted order
 *   modify: risk_check_modify
 *   cancel: risk_update of an order that ended
 * and, for reference, an empty timed region (the TSC reads themselves).
 *
 * With HOT > 0, orders use only HOT (account, instrument) pairs - a desk
 * whose flow concentrates on a few names, tables warm in cache; without,
 * every pair at random (65,536 positions, 5 MB: most lookups miss L2).
 *
 * usage: risk_bench [ORDERS [HOT]]      prints "name value" lines
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "core_internal.h"
#include "tsc.h"

#define ACCOUNTS 64
#define INSTRUMENTS 1024
#define IN_FLIGHT 4096
#define D 100000000LL

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void report(const char *name, uint64_t *v, uint32_t n, double ghz)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	uint64_t p50 = v[n / 2], p99 = v[(uint64_t)n * 99 / 100], p999 = v[(uint64_t)n * 999 / 1000];
	printf("%s_cycles_p50 %llu\n%s_cycles_p99 %llu\n%s_cycles_p999 %llu\n", name,
	       (unsigned long long)p50, name, (unsigned long long)p99, name,
	       (unsigned long long)p999);
	printf("%s_ns_p50 %.1f\n%s_ns_p99 %.1f\n", name, p50 / ghz, name, p99 / ghz);
}

struct req {
	struct risk_request r;
	int64_t mod_price;
	uint32_t mod_qty;
};

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000000;
	uint32_t hot = argc > 2 ? (uint32_t)atoi(argv[2]) : 0;
	struct risk_throttle th = {0};
	struct oms_core_config cfg = {
		.ip = 0x0a000001, .strategy_port = 9000, .venue_port = 9100,
		.order_capacity = 1024, .max_sessions = 1, .max_venues = 2,
		.max_instruments = INSTRUMENTS, .tx_capacity = 64,
		.max_accounts = ACCOUNTS, .max_positions = ACCOUNTS * INSTRUMENTS,
	};
	struct oms_core *c = oms_core_create(&cfg);
	if (!c)
		return 1;
	for (uint16_t v = 1; v <= 2; v++) {
		struct oms_venue_config vc = {.id = v, .ip = 0x0a000100u + v, .port = 9200};
		memcpy(vc.session, "BENCH     ", 10);
		if (oms_core_add_venue(c, &vc))
			return 1;
	}
	struct risk_gen *g = oms_gen_create(c, NULL);
	if (!g)
		return 1;
	for (uint32_t i = 0; i < INSTRUMENTS; i++) {
		struct oms_instrument_config ic = {
			.tick_size = D / 100, .lot_size = 10,
			.reference_price = (50 + i % 200) * D, .band_pct = 10 * D,
			.band_abs = 20 * D, .n_venues = 2, .venues = {1, 2},
		};
		char sym[9];
		snprintf(sym, sizeof(sym), "S%-7u", i);
		memcpy(ic.symbol, sym, 8);
		if (oms_gen_add_instrument(g, c, &ic))
			return 1;
	}
	for (uint32_t a = 0; a < ACCOUNTS; a++) {
		struct oms_account_config ac = {
			.id = 1000 + a * 7, .max_order_qty = 100000,
			.max_order_notional = 10000000 * D, .max_open_orders = 1000000,
			.credit_limit = 900000000LL * D, .ord_types = 6, .tifs = 6,
		};
		if (oms_gen_add_account(g, &ac))
			return 1;
		for (uint32_t i = 0; i < INSTRUMENTS; i++) {
			char sym[9];
			snprintf(sym, sizeof(sym), "S%-7u", i);
			if (oms_gen_add_position_limit(g, ac.id, sym, 1000000000))
				return 1;
		}
	}
	/* throttled, but never short of tokens at this rate */
	struct risk_rate rate = {.rate = 10000000, .cap = 1000000 * RISK_TOKEN};
	struct risk_gen *old = oms_core_publish(c, g);
	oms_core_take_generation(c);
	oms_gen_free(old);
	const struct risk_gen *t = c->gen;
	struct risk_state *st = &c->risk;

	struct req *rq = malloc(sizeof(*rq) * n);
	struct order *ord = aligned_alloc(64, sizeof(struct order) * IN_FLIGHT);
	uint64_t *t_new = malloc(8 * (size_t)n), *t_mod = malloc(8 * (size_t)n),
		 *t_cxl = malloc(8 * (size_t)n), *t_empty = malloc(8 * (size_t)n);
	if (!rq || !ord || !t_new || !t_mod || !t_cxl || !t_empty)
		return 1;
	memset(ord, 0, sizeof(struct order) * IN_FLIGHT);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t pair = (uint32_t)(next_rand() % (hot ? hot : ACCOUNTS * INSTRUMENTS));
		if (hot) /* spread the hot pairs over the tables */
			pair = (uint32_t)((pair * 2654435761ull) % (ACCOUNTS * INSTRUMENTS));
		uint32_t i = pair % INSTRUMENTS;
		int64_t ref = t->instruments[i].ref_price;
		rq[k].r = (struct risk_request){
			.account = 1000 + (pair / INSTRUMENTS) * 7,
			.instrument = i, .venue = (uint32_t)(next_rand() & 1),
			.qty = 10 * (1 + (uint32_t)(next_rand() % 100)),
			.price = ref + ((int64_t)(next_rand() % 1001) - 500) * (D / 100),
			.ref_price = ref,
			.side = (uint8_t)(1 + next_rand() % 3), .ord_type = 1,
			.tif = (uint8_t)(1 + (next_rand() & 1)),
		};
		rq[k].mod_price = rq[k].r.price + (rq[k].r.price > ref ? -D : D) / 100;
		rq[k].mod_qty = rq[k].r.qty + 10;
	}

	uint64_t now = 1000000000ull, rejects = 0, nmod = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct order *o = &ord[k % IN_FLIGHT];
		uint64_t t0, t1;
		if (k >= IN_FLIGHT) { /* the oldest order ends: canceled */
			o->state = OMS_ST_CANCELED;
			t0 = tsc();
			risk_update(st, o);
			t1 = tsc();
			t_cxl[k - IN_FLIGHT] = t1 - t0;
		}
		now += 1000;
		struct risk_verdict v;
		t0 = tsc();
		uint16_t rej = risk_check_new(t, st, &rate, &th, now, &rq[k].r, &v);
		if (!rej) {
			o->risk_acct = v.acct;
			o->risk_pos = v.pos;
			o->risk_px = v.px;
			o->instrument = rq[k].r.instrument;
			o->price = rq[k].r.price;
			o->qty = o->leaves_qty = rq[k].r.qty;
			o->cum_qty = 0;
			o->side = rq[k].r.side;
			o->ord_type = rq[k].r.ord_type;
			o->state = OMS_ST_PENDING_NEW;
			o->res_live = 0;
			o->res_qty = 0;
			o->res_notional = 0;
			risk_update(st, o);
		}
		t1 = tsc();
		t_new[k] = t1 - t0;
		rejects += rej != 0;
		if (rej)
			return fprintf(stderr, "order %u rejected: %u\n", k, rej), 1;
		if ((k & 3) == 0) {
			o->state = OMS_ST_NEW;
			t0 = tsc();
			rej = risk_check_modify(t, st, &rate, &th, now, o, rq[k].mod_price,
						rq[k].mod_qty, t->instruments[o->instrument].ref_price, 0);
			t1 = tsc();
			t_mod[nmod++] = t1 - t0;
			rejects += rej != 0;
		}
		t0 = tsc();
		t1 = tsc();
		t_empty[k] = t1 - t0;
	}
	double ghz = tsc_ghz();
	printf("orders %u\nhot_pairs %u\naccounts %u\ninstruments %u\npositions %u\n"
	       "rejects %llu\ntsc_ghz %.3f\n", n, hot, ACCOUNTS, INSTRUMENTS, t->n_positions,
	       (unsigned long long)rejects, ghz);
	report("new", t_new, n, ghz);
	report("modify", t_mod, (uint32_t)nmod, ghz);
	report("cancel", t_cxl, n - IN_FLIGHT, ghz);
	report("empty", t_empty, n, ghz);
	return 0;
}
