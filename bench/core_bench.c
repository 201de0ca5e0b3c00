/* Core benchmark: the C order pipeline alone, in one process, on one core.
 *
 * A generator builds every frame up front (checksummed Ethernet/IPv4/UDP,
 * exactly as a NIC would deliver them) in bursts of BURST: unique, valid
 * orders from several strategy sessions with a realistic life each - the
 * venue accepts, some are modified and replaced, most fill in one or two
 * executions, the rest are canceled - with many orders in flight at once.
 * The run covers more than twice the order table's capacity, so slots are
 * evicted and reused in steady state.  The venue's UserRefNums are
 * predicted the way the core assigns them (one counter per venue, +1 per
 * Enter or Replace), so every venue message finds its order.
 *
 * Then, on the same frames, it times:
 * Frames reach the code under test through a small recycled receive ring,
 * as from a NIC (see nic_receive); only the processing is timed.
 *   baseline: parse each frame (Ethernet/IPv4/UDP, both checksums) and echo
 *             its payload back as a new frame with fresh checksums;
 *   core:     oms_core_process_burst, timing off (throughput);
 *   core:     again with per-message TSC timing on (cycles per order).
 * and prints one "name value" line per figure.
 *
 * usage: core_bench ORDERS [CAPACITY]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "net.h"
#include "oms_core.h"
#include "ouch_wire.h"

#define BURST 32 /* frames per burst, as the DPDK loop will use */
#define N_SESSIONS 4
/* orders alive at once: a quarter of the table, at most 4096 */
static uint32_t in_flight = 4096;
#define FRAME_MAX 160

static const uint8_t APP_MAC[6] = {2, 0, 0, 0, 0, 1};
static const uint8_t VEN_MAC[6] = {2, 0, 0, 0, 2, 1};
#define APP_IP 0x0a0a0001u
#define VEN_IP 0x0a0a0201u
#define SESS_IP(i) (0x0a0a0101u + (uint32_t)(i))
#define SP_PORT 9000
#define VENUE_PORT 9100
#define SESS_PORT 9001
#define VEN_PEER_PORT 9200

static const char *SYMS[] = {"AAPL    ", "MSFT    ", "GOOG    ", "AMZN    ",
			     "TSLA    ", "NVDA    ", "META    ", "SPY     "};

struct frames {
	uint8_t *buf;
	uint16_t *len;
	uint32_t n, cap;
	uint32_t orders;       /* NewOrders among them */
	uint32_t strategy_msgs; /* all strategy messages */
};

static uint8_t *frame_slot(struct frames *f)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 1 << 16;
		f->buf = realloc(f->buf, (size_t)f->cap * FRAME_MAX);
		f->len = realloc(f->len, (size_t)f->cap * sizeof(uint16_t));
		if (!f->buf || !f->len) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
	}
	return f->buf + (size_t)f->n * FRAME_MAX;
}

static uint64_t sp_seq[N_SESSIONS];
static uint64_t venue_seq = 1;
static uint32_t next_ref = 1;
static uint64_t match_no = 1;

static void add_sp(struct frames *f, int s, const void *msg, uint32_t len)
{
	uint8_t *fr = frame_slot(f);
	uint8_t mac[6] = {2, 0, 0, 0, 1, (uint8_t)(s + 1)};

	memcpy(fr + NET_TX_HLEN, msg, len);
	net_build_udp(fr, mac, APP_MAC, SESS_IP(s), APP_IP, SESS_PORT, SP_PORT, len);
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

static void add_venue(struct frames *f, const uint8_t *m, uint32_t len)
{
	uint8_t *fr = frame_slot(f);
	uint8_t *p = fr + NET_TX_HLEN;

	memcpy(p, "NSDQ01    ", UFO_SESSION_LEN);
	wr_be64(p + UFO_OFF_SEQ, venue_seq++);
	wr_be16(p + UFO_OFF_COUNT, 1);
	wr_be16(p + UFO_HLEN, (uint16_t)len);
	memcpy(p + UFO_HLEN + 2, m, len);
	net_build_udp(fr, VEN_MAC, APP_MAC, VEN_IP, APP_IP, VEN_PEER_PORT, VENUE_PORT,
		      UFO_HLEN + 2 + len);
	f->len[f->n++] = (uint16_t)(NET_TX_HLEN + UFO_HLEN + 2 + len);
}

static void ouch_accepted(struct frames *f, uint32_t ref, uint32_t qty)
{
	uint8_t m[OUCH_ACCEPTED_LEN] = {0};

	m[0] = 'A';
	wr_be32(m + OUCH_OFF_REF, ref);
	wr_be32(m + OUCH_ACCEPTED_OFF_QTY, qty);
	m[OUCH_ACCEPTED_OFF_STATE] = 'L';
	add_venue(f, m, sizeof(m));
}

static void ouch_executed(struct frames *f, uint32_t ref, uint32_t qty, uint64_t px)
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

static void ouch_canceled(struct frames *f, uint32_t ref, uint32_t qty)
{
	uint8_t m[OUCH_CANCELED_LEN] = {0};

	m[0] = 'C';
	wr_be32(m + OUCH_OFF_REF, ref);
	wr_be32(m + OUCH_CANCELED_OFF_QTY, qty);
	m[OUCH_CANCELED_OFF_REASON] = 'U';
	add_venue(f, m, sizeof(m));
}

static void ouch_replaced(struct frames *f, uint32_t orig, uint32_t ref, uint32_t qty,
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

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static void start(struct frames *f, struct life *l, uint64_t id)
{
	struct sp_new_order m;

	memset(&m, 0, sizeof(m));
	l->id = id;
	l->session = (int)(rnd() % N_SESSIONS);
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
	l->ref = next_ref++;
	f->orders++;
}

/* Returns 1 when the life is over. */
static int advance(struct frames *f, struct life *l)
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

static void generate(struct frames *f, uint32_t orders)
{
	struct life *lives = calloc(in_flight, sizeof(*lives));
	uint64_t id = 1;

	for (int s = 0; s < N_SESSIONS; s++) {
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

static struct oms_core *make_core(uint32_t capacity)
{
	struct oms_core_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.mac, APP_MAC, 6);
	cfg.ip = APP_IP;
	cfg.strategy_port = SP_PORT;
	cfg.venue_port = VENUE_PORT;
	cfg.order_capacity = capacity;
	cfg.max_sessions = 64;
	cfg.max_venues = 4;
	cfg.max_instruments = 64;
	cfg.tx_capacity = 4 * BURST;
	cfg.default_venue = 1;
	cfg.ouch_capacity = 'A';
	struct oms_core *c = oms_core_create(&cfg);
	if (!c) {
		fprintf(stderr, "oms_core_create failed\n");
		exit(1);
	}
	for (int s = 0; s < N_SESSIONS; s++) {
		struct oms_session_config sc = {.id = (uint32_t)s + 1, .ip = SESS_IP(s),
						.port = SESS_PORT, .enabled = 1};
		uint8_t mac[6] = {2, 0, 0, 0, 1, (uint8_t)(s + 1)};
		memcpy(sc.mac, mac, 6);
		oms_core_add_session(c, &sc);
	}
	struct oms_venue_config vc = {.id = 1, .ip = VEN_IP, .port = VEN_PEER_PORT};
	memcpy(vc.mac, VEN_MAC, 6);
	memcpy(vc.session, "NSDQ01    ", 10);
	oms_core_add_venue(c, &vc);
	for (int i = 0; i < 8; i++) {
		struct oms_instrument_config ic;
		memcpy(ic.symbol, SYMS[i], 8);
		oms_core_add_instrument(c, &ic);
	}
	return c;
}

/* A NIC's receive ring: DMA writes each frame into one of a few thousand
 * recycled buffers, which therefore stay in cache (DDIO puts them straight
 * into L3).  The copy stands in for the DMA and is not timed. */
#define RX_RING 4096
static uint8_t rx_ring[RX_RING][FRAME_MAX] __attribute__((aligned(64)));
static const uint8_t *rx_ptrs[BURST];
static uint32_t rx_next;

static const uint8_t **nic_receive(const uint8_t **frames, const uint16_t *len, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		uint8_t *slot = rx_ring[rx_next++ % RX_RING];
		memcpy(slot, frames[k], len[k]);
		rx_ptrs[k] = slot;
	}
	return rx_ptrs;
}

/* The baseline: what any UDP appliance must do per frame at least. */
static uint32_t echo_burst(const uint8_t *const *fr, const uint16_t *len, uint32_t n,
			   uint8_t *tx, uint16_t *tx_len)
{
	uint32_t out = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct net_udp_view u;
		if (net_parse_udp(fr[i], len[i], APP_IP, &u) != OMS_OK)
			continue;
		uint8_t *t = tx + (size_t)out * OMS_TX_SLOT;
		memcpy(t + NET_TX_HLEN, u.payload, u.payload_len);
		net_build_udp(t, APP_MAC, u.src_mac, APP_IP, u.src_ip, u.dst_port, u.src_port,
			      u.payload_len);
		tx_len[out++] = (uint16_t)(NET_TX_HLEN + u.payload_len);
	}
	return out;
}

static double tsc_hz(void)
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

static uint64_t percentile(const struct lat_hist *h, double p)
{
	uint64_t want = (uint64_t)((double)h->count * p / 100.0 + 0.5), acc = 0;

	for (uint32_t b = 0; b < LAT_BUCKETS; b++) {
		acc += h->bucket[b];
		if (acc >= want && h->bucket[b])
			return lat_bucket_low(b);
	}
	return h->max;
}

int main(int argc, char **argv)
{
	uint32_t orders = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
	uint32_t capacity = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 65536;
	struct frames f = {0};

	if (in_flight > capacity / 4)
		in_flight = capacity / 4;

	generate(&f, orders);
	const uint8_t **ptrs = malloc((size_t)f.n * sizeof(*ptrs));
	for (uint32_t i = 0; i < f.n; i++)
		ptrs[i] = f.buf + (size_t)i * FRAME_MAX;
	double hz = tsc_hz();

	uint8_t *tx = aligned_alloc(64, 4 * BURST * OMS_TX_SLOT);
	uint16_t tx_len[4 * BURST];
	uint64_t echoed = 0, base_cycles = 0;
	for (uint32_t i = 0; i < f.n; i += BURST) {
		uint32_t n = f.n - i < BURST ? f.n - i : BURST;
		const uint8_t **rx = nic_receive(ptrs + i, f.len + i, n);
		uint64_t t0 = __rdtsc();
		echoed += echo_burst(rx, f.len + i, n, tx, tx_len);
		base_cycles += __rdtsc() - t0;
	}

	struct oms_core *c = make_core(capacity);
	uint64_t core_cycles = 0;
	for (uint32_t i = 0; i < f.n; i += BURST) {
		uint32_t n = f.n - i < BURST ? f.n - i : BURST;
		const uint8_t **rx = nic_receive(ptrs + i, f.len + i, n);
		uint64_t t0 = __rdtsc();
		oms_core_process_burst(c, rx, f.len + i, n, (uint64_t)i);
		oms_core_tx_clear(c);
		core_cycles += __rdtsc() - t0;
	}
	const struct oms_stats *st = oms_core_stats(c);
	uint64_t sys_rejects = 0, drops = 0;
	for (int i = 0; i < OMS_REJ_SYSTEM_SLOTS; i++)
		sys_rejects += st->reject_system[i];
	for (int i = 1; i < OMS_DROP_MAX; i++)
		drops += st->drop[i];
	uint64_t accepted = st->sp_out[SP_ACCEPTED];
	uint64_t fills = st->sp_out[SP_FILL];
	uint64_t evicted = st->event[OMS_EV_ORDERS_EVICTED];

	struct oms_core *ct = make_core(capacity);
	oms_core_set_timing(ct, 1);
	for (uint32_t i = 0; i < f.n; i += BURST) {
		uint32_t n = f.n - i < BURST ? f.n - i : BURST;
		oms_core_process_burst(ct, nic_receive(ptrs + i, f.len + i, n), f.len + i, n,
				       (uint64_t)i);
		oms_core_tx_clear(ct);
	}
	const struct lat_hist *h = oms_core_latency(ct);

	double core_s = (double)core_cycles / hz, base_s = (double)base_cycles / hz;
	printf("frames %u\n", f.n);
	printf("orders %u\n", f.orders);
	printf("strategy_msgs %u\n", f.strategy_msgs);
	printf("table_capacity %u\n", capacity);
	printf("in_flight %u\n", in_flight);
	printf("tsc_hz %.0f\n", hz);
	printf("orders_per_s %.0f\n", f.orders / core_s);
	printf("msgs_per_s %.0f\n", f.n / core_s);
	printf("ns_per_frame %.1f\n", core_s * 1e9 / f.n);
	printf("baseline_msgs_per_s %.0f\n", f.n / base_s);
	printf("baseline_ns_per_frame %.1f\n", base_s * 1e9 / f.n);
	printf("ratio_core_to_baseline %.2f\n", (double)core_cycles / (double)base_cycles);
	printf("cycles_p50 %lu\n", (unsigned long)percentile(h, 50));
	printf("cycles_p99 %lu\n", (unsigned long)percentile(h, 99));
	printf("cycles_p99_9 %lu\n", (unsigned long)percentile(h, 99.9));
	printf("ns_p99 %.1f\n", (double)percentile(h, 99) * 1e9 / hz);
	printf("timed_msgs %lu\n", (unsigned long)h->count);
	printf("accept_ratio %.4f\n", (double)accepted / f.orders);
	printf("fills %lu\n", (unsigned long)fills);
	printf("evicted %lu\n", (unsigned long)evicted);
	printf("system_rejects %lu\n", (unsigned long)sys_rejects);
	printf("drops %lu\n", (unsigned long)drops);
	printf("echoed %lu\n", (unsigned long)echoed);
	for (int i = 1; i < OMS_DROP_MAX; i++)
		if (st->drop[i])
			printf("drop_%s %lu\n", oms_drop_name(i), (unsigned long)st->drop[i]);
	for (int i = 0; i < OMS_REJ_BUSINESS_SLOTS; i++)
		if (st->reject_business[i])
			printf("reject_business_%d %lu\n", i, (unsigned long)st->reject_business[i]);
	oms_core_destroy(c);
	oms_core_destroy(ct);
	free(ptrs);
	free(f.buf);
	free(f.len);
	free(tx);
	return 0;
}
