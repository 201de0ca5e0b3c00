/* Feed handler benchmark: ITCH 5.0 message -> book -> top of book, and the
 * cost of one top-of-book read from another core's point of view.
 *
 * A synthetic day for SYMBOLS stocks (every one subscribed, so every
 * message reaches a book): adds around a moving mid, executions, partial
 * cancels, deletes and replaces in roughly the proportions of a Nasdaq
 * TotalView day, with up to LIVE_MAX resting orders per stock.  Packets
 * are generated in chunks before each timed stretch; generation is not
 * timed.  Two runs over the same kind of stream:
 *   - latency: one message per MoldUDP64 packet, each call timed with the
 *     TSC (its ~20-cycle overhead included), p50/p99/p999;
 *   - throughput: MSGS_PER_PACKET messages per packet, wall time.
 * Prints one "name value" line per figure.  Usage: feed_bench MESSAGES */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "feed.h"
#include "net.h"
#include "tsc.h"

#define SYMBOLS 64
#define LIVE_MAX 1024
#define MSGS_PER_PACKET 16
#define CHUNK_PACKETS 4096
#define MID 1000000 /* $100.0000 in Price(4) */
#define BAND 5000   /* the mid wanders $0.50 either way */


static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static inline uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)((rng >> 32) * n >> 32);
}

struct live {
	uint64_t ref;
	uint32_t qty;
	uint32_t px;
	uint8_t side;
};

static struct live book[SYMBOLS][LIVE_MAX];
static uint32_t n_live[SYMBOLS];
static uint32_t mid[SYMBOLS];
static uint64_t next_ref = 1, ts = 1;

static uint8_t *header(uint8_t *m, char type, uint16_t locate)
{
	m[0] = (uint8_t)type;
	wr_be16(m + ITCH_OFF_LOCATE, locate);
	wr_be16(m + ITCH_OFF_TRACKING, 0);
	wr_be16(m + ITCH_OFF_TIMESTAMP, (uint16_t)(ts >> 32));
	wr_be32(m + ITCH_OFF_TIMESTAMP + 2, (uint32_t)ts);
	ts += 50;
	return m;
}

static char names[SYMBOLS][9];

static const char *symbol(uint32_t s)
{
	if (!names[s][0])
		snprintf(names[s], 9, "S%03u    ", s);
	return names[s];
}

/* Writes one message for a random stock at m; returns its length. */
static uint16_t next_message(uint8_t *m)
{
	uint32_t s = rnd(SYMBOLS), r = rnd(100);
	uint16_t loc = (uint16_t)(s + 1);
	struct live *lv = book[s];

	if (n_live[s] < 64 || (r < 42 && n_live[s] < LIVE_MAX)) {
		struct live *o = &lv[n_live[s]++];
		o->side = (uint8_t)rnd(2);
		o->px = o->side ? mid[s] + 100 * (1 + rnd(20)) : mid[s] - 100 * (1 + rnd(20));
		o->qty = 100 * (1 + rnd(10));
		o->ref = next_ref++;
		header(m, 'A', loc);
		wr_be64(m + ITCH_ADD_OFF_REF, o->ref);
		m[ITCH_ADD_OFF_SIDE] = o->side ? 'S' : 'B';
		wr_be32(m + ITCH_ADD_OFF_SHARES, o->qty);
		memcpy(m + ITCH_ADD_OFF_STOCK, symbol(s), 8);
		wr_be32(m + ITCH_ADD_OFF_PRICE, o->px);
		return ITCH_ADD_LEN;
	}
	uint32_t i = rnd(n_live[s]);
	struct live *o = &lv[i];
	if (r < 52 || r >= 95) {
		/* execution, partial or full; the mid drifts with it */
		uint32_t q = r < 48 ? o->qty : 1 + rnd(o->qty);
		header(m, 'E', loc);
		wr_be64(m + ITCH_EXEC_OFF_REF, o->ref);
		wr_be32(m + ITCH_EXEC_OFF_SHARES, q);
		wr_be64(m + ITCH_EXEC_OFF_MATCH, ts);
		/* within a band, so stranded orders stay few levels away */
		if (o->px > MID - BAND && o->px < MID + BAND)
			mid[s] = o->px;
		o->qty -= q;
		if (!o->qty)
			*o = lv[--n_live[s]];
		return ITCH_EXEC_LEN;
	}
	if (r < 62 && o->qty > 100) {
		header(m, 'X', loc);
		wr_be64(m + ITCH_CANCEL_OFF_REF, o->ref);
		wr_be32(m + ITCH_CANCEL_OFF_SHARES, 100);
		o->qty -= 100;
		return ITCH_CANCEL_LEN;
	}
	if (r < 85) {
		header(m, 'D', loc);
		wr_be64(m + ITCH_DELETE_OFF_REF, o->ref);
		*o = lv[--n_live[s]];
		return ITCH_DELETE_LEN;
	}
	header(m, 'U', loc);
	wr_be64(m + ITCH_REPLACE_OFF_ORIG_REF, o->ref);
	o->ref = next_ref++;
	o->px = o->side ? mid[s] + 100 * (1 + rnd(20)) : mid[s] - 100 * (1 + rnd(20));
	o->qty = 100 * (1 + rnd(10));
	wr_be64(m + ITCH_REPLACE_OFF_NEW_REF, o->ref);
	wr_be32(m + ITCH_REPLACE_OFF_SHARES, o->qty);
	wr_be32(m + ITCH_REPLACE_OFF_PRICE, o->px);
	return ITCH_REPLACE_LEN;
}

static uint64_t seq = 1;

/* A packet of `count` messages at p; returns its length. */
static uint32_t next_packet(uint8_t *p, uint32_t count)
{
	uint32_t off = MOLD_HLEN;

	memcpy(p, "BENCH00001", 10);
	wr_be64(p + MOLD_OFF_SEQ, seq);
	wr_be16(p + MOLD_OFF_COUNT, (uint16_t)count);
	for (uint32_t i = 0; i < count; i++) {
		uint16_t len = next_message(p + off + 2);
		wr_be16(p + off, len);
		off += 2 + len;
	}
	seq += count;
	return off;
}

static struct oms_feed *make_feed(void)
{
	struct oms_feed_config cfg = {.max_symbols = SYMBOLS, .max_orders = SYMBOLS * LIVE_MAX,
				      .max_levels = 256};
	struct oms_feed *f = oms_feed_create(&cfg);
	if (!f)
		exit(2);
	for (uint32_t s = 0; s < SYMBOLS; s++)
		if (oms_feed_subscribe(f, symbol(s), s))
			exit(2);
	/* the directory, as the day starts */
	uint8_t p[64];
	for (uint32_t s = 0; s < SYMBOLS; s++) {
		uint8_t *m = p + MOLD_HLEN + 2;
		memset(m, ' ', ITCH_DIRECTORY_LEN);
		header(m, 'R', (uint16_t)(s + 1));
		memcpy(m + ITCH_DIRECTORY_OFF_STOCK, symbol(s), 8);
		memcpy(p, "BENCH00001", 10);
		wr_be64(p + MOLD_OFF_SEQ, seq++);
		wr_be16(p + MOLD_OFF_COUNT, 1);
		wr_be16(p + MOLD_HLEN, ITCH_DIRECTORY_LEN);
		oms_feed_process_packet(f, p, MOLD_HLEN + 2 + ITCH_DIRECTORY_LEN, 0);
		mid[s] = MID;
		n_live[s] = 0;
	}
	return f;
}

static void check_clean(const struct oms_feed *f, const char *run)
{
	const struct oms_feed_stats *st = oms_feed_stats(f);
	uint64_t drops = 0;
	for (int i = 0; i < OMS_FEED_DROP_MAX; i++)
		drops += st->drop[i];
	printf("%s_drops %llu\n%s_tob_updates %llu\n%s_live_orders %u\n", run,
	       (unsigned long long)drops, run,
	       (unsigned long long)st->event[OMS_FEED_EV_TOB_UPDATES], run,
	       oms_feed_live_orders(f));
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 4000000;
	double ghz = tsc_ghz();
	uint8_t *buf = malloc((size_t)CHUNK_PACKETS * (MOLD_HLEN + MSGS_PER_PACKET * 64));
	uint32_t *off = malloc(sizeof(uint32_t) * (CHUNK_PACKETS + 1));
	uint64_t *cyc = malloc(sizeof(uint64_t) * total);

	/* latency: one message per packet, each timed */
	struct oms_feed *f = make_feed();
	uint64_t done = 0, now = 1;
	while (done < total) {
		uint32_t n = total - done < CHUNK_PACKETS ? (uint32_t)(total - done) : CHUNK_PACKETS;
		off[0] = 0;
		for (uint32_t i = 0; i < n; i++)
			off[i + 1] = off[i] + next_packet(buf + off[i], 1);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t t0 = tsc();
			oms_feed_process_packet(f, buf + off[i], off[i + 1] - off[i], now++);
			cyc[done + i] = tsc() - t0;
		}
		done += n;
	}
	qsort(cyc, total, sizeof(*cyc), cmp_u64);
	printf("tsc_ghz %.3f\nmessages %llu\n", ghz, (unsigned long long)total);
	printf("msg_cycles_p50 %llu\nmsg_cycles_p99 %llu\nmsg_cycles_p999 %llu\n",
	       (unsigned long long)cyc[total / 2], (unsigned long long)cyc[total * 99 / 100],
	       (unsigned long long)cyc[total * 999 / 1000]);
	printf("msg_ns_p50 %.1f\nmsg_ns_p99 %.1f\n", cyc[total / 2] / ghz,
	       cyc[total * 99 / 100] / ghz);
	check_clean(f, "latency");

	/* the cost of one top-of-book read (the feed idle: the common case) */
	struct oms_tob_view v;
	uint64_t sink = 0, reads = 4000000;
	uint64_t t0 = tsc();
	for (uint64_t i = 0; i < reads; i++) {
		oms_tob_read(oms_feed_tob(f, (uint32_t)(i & (SYMBOLS - 1))), &v);
		sink += (uint64_t)v.bid_px;
	}
	uint64_t t1 = tsc();
	printf("tob_read_ns %.2f\n", (double)(t1 - t0) / reads / ghz);
	oms_feed_destroy(f);

	/* throughput: MSGS_PER_PACKET messages per packet */
	f = make_feed();
	done = 0;
	double busy = 0;
	uint32_t n_chunks = 0;
	/* per-chunk rates: on a shared machine the median chunk shows what
	 * the code does, the wall-clock total what the machine let it do */
	double *rate = malloc(sizeof(double) * (total / (CHUNK_PACKETS * MSGS_PER_PACKET) + 2));
	while (done + CHUNK_PACKETS * MSGS_PER_PACKET <= total || !n_chunks) {
		uint32_t n = CHUNK_PACKETS;
		off[0] = 0;
		for (uint32_t i = 0; i < n; i++)
			off[i + 1] = off[i] + next_packet(buf + off[i], MSGS_PER_PACKET);
		double a = now_s();
		for (uint32_t i = 0; i < n; i++)
			oms_feed_process_packet(f, buf + off[i], off[i + 1] - off[i], now++);
		double dt = now_s() - a;
		busy += dt;
		rate[n_chunks++] = n * MSGS_PER_PACKET / dt;
		done += (uint64_t)n * MSGS_PER_PACKET;
	}
	qsort(rate, n_chunks, sizeof(*rate), cmp_double);
	printf("throughput_messages %llu\nmsgs_per_s %.0f\nmsgs_per_s_chunk_p50 %.0f\n"
	       "msgs_per_s_chunk_best %.0f\n", (unsigned long long)done, done / busy,
	       rate[n_chunks / 2], rate[n_chunks - 1]);
	free(rate);
	check_clean(f, "throughput");
	oms_feed_destroy(f);
	free(buf);
	free(off);
	free(cyc);
	return sink == 42; /* keeps the reads */
}
