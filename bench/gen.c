/* The benchmarks' traffic generator: see gen.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "gen.h"
#include "net.h"
#include "ouch_wire.h"

const uint8_t GEN_APP_MAC[6] = {2, 0, 0, 0, 0, 1};
static const uint8_t VEN_MAC[6] = {2, 0, 0, 0, 2, 1};

static const char *SYMS[] = {"AAPL    ", "MSFT    ", "GOOG    ", "AMZN    ",
			     "TSLA    ", "NVDA    ", "META    ", "SPY     "};

static uint8_t *frame_slot(struct gen_frames *f)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 1 << 16;
		f->buf = realloc(f->buf, (size_t)f->cap * GEN_FRAME_MAX);
		f->len = realloc(f->len, (size_t)f->cap * sizeof(uint16_t));
		f->is_order = realloc(f->is_order, f->cap);
		if (!f->buf || !f->len || !f->is_order) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
	}
	f->is_order[f->n] = 0;
	return f->buf + (size_t)f->n * GEN_FRAME_MAX;
}

static uint64_t sp_seq[GEN_SESSIONS];
static uint64_t venue_seq;
static uint32_t next_ref;
static uint64_t match_no;

static void add_sp(struct gen_frames *f, int s, const void *msg, uint32_t len)
{
	uint8_t *fr = frame_slot(f);
	uint8_t mac[6] = {2, 0, 0, 0, 1, (uint8_t)(s + 1)};

	memcpy(fr + NET_TX_HLEN, msg, len);
	net_build_udp(fr, mac, GEN_APP_MAC, GEN_SESS_IP(s), GEN_APP_IP, GEN_SESS_PORT,
		      GEN_SP_PORT, len);
	f->len[f->n++] = (uint16_t)(NET_TX_HLEN + len);
	f->strategy_msgs++;
}

static void sp_hdr(struct sp_header *h, int s, uint8_t type, uint16_t len, int seq)
{
	h->version = SP_VERSION;
	h->type = type;
	h->length = len;
	h->session_id = (uint32_t)s + 1;
	h->seq = seq ? ++sp_seq[s] : 0;
	h->timestamp_ns = 0;
}

static void add_venue(struct gen_frames *f, const uint8_t *m, uint32_t len)
{
	uint8_t *fr = frame_slot(f);
	uint8_t *p = fr + NET_TX_HLEN;

	memcpy(p, "NSDQ01    ", UFO_SESSION_LEN);
	wr_be64(p + UFO_OFF_SEQ, venue_seq++);
	wr_be16(p + UFO_OFF_COUNT, 1);
	wr_be16(p + UFO_HLEN, (uint16_t)len);
	memcpy(p + UFO_HLEN + 2, m, len);
	net_build_udp(fr, VEN_MAC, GEN_APP_MAC, GEN_VEN_IP, GEN_APP_IP, GEN_VEN_PEER_PORT,
		      GEN_VENUE_PORT, UFO_HLEN + 2 + len);
	f->len[f->n++] = (uint16_t)(NET_TX_HLEN + UFO_HLEN + 2 + len);
}

static void ouch_accepted(struct gen_frames *f, uint32_t ref, uint32_t qty)
{
	uint8_t m[OUCH_ACCEPTED_LEN] = {0};

	m[0] = 'A';
	wr_be32(m + OUCH_OFF_REF, ref);
	wr_be32(m + OUCH_ACCEPTED_OFF_QTY, qty);
	m[OUCH_ACCEPTED_OFF_STATE] = 'L';
	add_venue(f, m, sizeof(m));
}

static void ouch_executed(struct gen_frames *f, uint32_t ref, uint32_t qty, uint64_t px)
{
	uint8_t m[OUCH_EXECUTED_LEN] = {0};

	m[0] = 'E';
	wr_be32(m + OUCH_OFF_REF, ref);
	wr_be32(m + OUCH_EXECUTED_OFF_QTY, qty);
	wr_be64(m + OUCH_EXECUTED_OFF_PRICE, px);
	m[OUCH_EXECUTED_OFF_LIQUIDITY] = 'R';
	wr_be64(m + OUCH_EXECUTED_OFF_MATCH, match_no++);
	add_venue(f, m, sizeof(m));
}

static void ouch_canceled(struct gen_frames *f, uint32_t ref, uint32_t qty)
{
	uint8_t m[OUCH_CANCELED_LEN] = {0};

	m[0] = 'C';
	wr_be32(m + OUCH_OFF_REF, ref);
	wr_be32(m + OUCH_CANCELED_OFF_QTY, qty);
	m[OUCH_CANCELED_OFF_REASON] = 'U';
	add_venue(f, m, sizeof(m));
}

static void ouch_replaced(struct gen_frames *f, uint32_t orig, uint32_t ref, uint32_t qty,
			  uint64_t px)
{
	uint8_t m[OUCH_REPLACED_LEN] = {0};

	m[0] = 'U';
	wr_be32(m + OUCH_REPLACED_OFF_ORIG_REF, orig);
	wr_be32(m + OUCH_REPLACED_OFF_REF, ref);
	wr_be32(m + OUCH_REPLACED_OFF_QTY, qty);
	wr_be64(m + OUCH_REPLACED_OFF_PRICE, px);
	m[OUCH_REPLACED_OFF_STATE] = 'L';
	add_venue(f, m, sizeof(m));
}

/* One order's life, advanced one event per visit. */
struct life {
	uint64_t id;
	int session;
	int step;
	int plan; /* 0: fill in two, 1: modify then fill, 2: cancel */
	uint32_t ref;
	uint32_t pending_ref;
	uint32_t qty;
	int64_t price;
};

static uint64_t rng_state;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static void start(struct gen_frames *f, struct life *l, uint64_t id)
{
	struct sp_new_order m;

	memset(&m, 0, sizeof(m));
	l->id = id;
	l->session = (int)(rnd() % GEN_SESSIONS);
	l->step = 0;
	/* 55 % fill in two executions, 25 % are modified first, 20 % canceled */
	uint32_t r = rnd() % 100;
	l->plan = r < 55 ? 0 : r < 80 ? 1 : 2;
	l->qty = 100 * (1 + rnd() % 10);
	l->price = (int64_t)(100 + rnd() % 400) * SP_PRICE_SCALE + (int64_t)(rnd() % 100) * 1000000;
	sp_hdr(&m.hdr, l->session, SP_NEW_ORDER, sizeof(m), 1);
	m.cl_ord_id = id;
	m.account = 1 + rnd() % 8;
	m.side = (uint8_t)(1 + rnd() % 2);
	m.ord_type = SP_ORD_LIMIT;
	m.tif = SP_TIF_DAY;
	memcpy(m.symbol, SYMS[rnd() % 8], 8);
	m.price = l->price;
	m.qty = l->qty;
	add_sp(f, l->session, &m, sizeof(m));
	f->is_order[f->n - 1] = 1;
	l->ref = next_ref++;
	f->orders++;
}

/* Returns 1 when the life is over. */
static int advance(struct gen_frames *f, struct life *l)
{
	uint64_t px = (uint64_t)(l->price / 10000);

	switch (l->step++) {
	case 0:
		ouch_accepted(f, l->ref, l->qty);
		return 0;
	case 1:
		if (l->plan == 0) {
			ouch_executed(f, l->ref, l->qty / 2, px);
		} else if (l->plan == 1) {
			struct sp_modify m;
			memset(&m, 0, sizeof(m));
			sp_hdr(&m.hdr, l->session, SP_MODIFY, sizeof(m), 1);
			m.cl_ord_id = l->id;
			m.new_price = l->price - SP_PRICE_SCALE / 100;
			m.new_qty = l->qty + 100;
			add_sp(f, l->session, &m, sizeof(m));
			l->pending_ref = next_ref++; /* the core takes it now */
		} else {
			struct sp_cancel m;
			memset(&m, 0, sizeof(m));
			sp_hdr(&m.hdr, l->session, SP_CANCEL, sizeof(m), 1);
			m.cl_ord_id = l->id;
			add_sp(f, l->session, &m, sizeof(m));
		}
		return 0;
	case 2:
		if (l->plan == 0) {
			ouch_executed(f, l->ref, l->qty - l->qty / 2, px);
			return 1;
		}
		if (l->plan == 1) {
			l->price -= SP_PRICE_SCALE / 100;
			l->qty += 100;
			ouch_replaced(f, l->ref, l->pending_ref, l->qty,
				      (uint64_t)(l->price / 10000));
			l->ref = l->pending_ref;
			return 0;
		}
		ouch_canceled(f, l->ref, l->qty);
		return 1;
	default:
		ouch_executed(f, l->ref, l->qty, px);
		return 1;
	}
}

void gen_generate(struct gen_frames *f, uint32_t orders, uint32_t in_flight)
{
	struct life *lives = calloc(in_flight, sizeof(*lives));
	uint64_t id = 1;

	/* the same traffic every time */
	memset(sp_seq, 0, sizeof(sp_seq));
	venue_seq = 1;
	next_ref = 1;
	match_no = 1;
	rng_state = 88172645463325252ull;

	for (int s = 0; s < GEN_SESSIONS; s++) {
		struct sp_login m;
		memset(&m, 0, sizeof(m));
		sp_hdr(&m.hdr, s, SP_LOGIN, sizeof(m), 0);
		m.next_expected_seq = 1;
		add_sp(f, s, &m, sizeof(m));
	}
	for (uint32_t i = 0; i < in_flight; i++)
		start(f, &lives[i], id++);
	/* visit the lives round-robin, so each step of one order is separated
	 * from the next by thousands of other messages, as in a busy market */
	while (f->orders < orders) {
		for (uint32_t i = 0; i < in_flight && f->orders < orders; i++)
			if (advance(f, &lives[i]))
				start(f, &lives[i], id++);
	}
	free(lives);
}

void gen_free(struct gen_frames *f)
{
	free(f->buf);
	free(f->len);
	free(f->is_order);
	memset(f, 0, sizeof(*f));
}

struct oms_core *gen_make_core(uint32_t capacity)
{
	return gen_make_core_opt(capacity, 0);
}

struct oms_core *gen_make_core_opt(uint32_t capacity, uint8_t checksum_offload)
{
	struct oms_core_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.mac, GEN_APP_MAC, 6);
	cfg.ip = GEN_APP_IP;
	cfg.strategy_port = GEN_SP_PORT;
	cfg.venue_port = GEN_VENUE_PORT;
	cfg.order_capacity = capacity;
	cfg.max_sessions = 64;
	cfg.max_venues = 4;
	cfg.max_instruments = 64;
	cfg.tx_capacity = 4 * GEN_BURST;
	cfg.checksum_offload = checksum_offload;
	cfg.ouch_capacity = 'A';
	struct oms_core *c = oms_core_create(&cfg);
	if (!c) {
		fprintf(stderr, "oms_core_create failed\n");
		exit(1);
	}
	for (int s = 0; s < GEN_SESSIONS; s++) {
		struct oms_session_config sc = {.id = (uint32_t)s + 1, .ip = GEN_SESS_IP(s),
						.port = GEN_SESS_PORT, .enabled = 1};
		uint8_t mac[6] = {2, 0, 0, 0, 1, (uint8_t)(s + 1)};
		memcpy(sc.mac, mac, 6);
		oms_core_add_session(c, &sc);
	}
	struct oms_venue_config vc = {.id = 1, .ip = GEN_VEN_IP, .port = GEN_VEN_PEER_PORT};
	memcpy(vc.mac, VEN_MAC, 6);
	memcpy(vc.session, "NSDQ01    ", 10);
	oms_core_add_venue(c, &vc);
	struct risk_gen *g = oms_gen_create(c, NULL);
	if (!g) {
		fprintf(stderr, "oms_gen_create failed\n");
		exit(1);
	}
	for (int i = 0; i < 8; i++) {
		struct oms_instrument_config ic;
		memset(&ic, 0, sizeof(ic));
		memcpy(ic.symbol, SYMS[i], 8);
		oms_gen_add_instrument(g, c, &ic);
	}
	/* the generator's accounts, with limits its orders stay inside: the
	 * pre-trade checks all run, and all pass */
	for (uint32_t a = 1; a <= 8; a++) {
		struct oms_account_config ac = {
			.id = a, .max_order_qty = 999999,
			.max_order_notional = (int64_t)1 << 62, .max_open_orders = 1u << 30,
			.credit_limit = (int64_t)1 << 62,
			.ord_types = (1 << SP_ORD_LIMIT) | (1 << SP_ORD_MARKET),
			.tifs = (1 << SP_TIF_DAY) | (1 << SP_TIF_IOC)};
		oms_gen_add_account(g, &ac);
		for (int i = 0; i < 8; i++)
			oms_gen_add_position_limit(g, a, SYMS[i], (int64_t)1 << 40);
	}
	struct oms_route_config rc = {.venue = 1};
	oms_gen_add_route(g, c, &rc);
	for (int s = 0; s < GEN_SESSIONS; s++)
		oms_gen_set_throttle(g, c, (uint32_t)s + 1, 0, 0);
	struct risk_gen *old = oms_core_publish(c, g);
	oms_core_take_generation(c);
	oms_gen_free(old);
	return c;
}

double gen_tsc_hz(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	uint64_t c0 = __rdtsc();
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 50000000L);
	uint64_t c1 = __rdtsc();
	double ns = (double)((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
	return (double)(c1 - c0) * 1e9 / ns;
}

uint64_t gen_percentile(const struct lat_hist *h, double p)
{
	uint64_t want = (uint64_t)((double)h->count * p / 100.0 + 0.5), acc = 0;

	for (uint32_t b = 0; b < LAT_BUCKETS; b++) {
		acc += h->bucket[b];
		if (acc >= want && h->bucket[b])
			return lat_bucket_low(b);
	}
	return h->max;
}
