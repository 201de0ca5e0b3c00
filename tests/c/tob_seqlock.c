/* Readers on other threads never see a torn top of book.
 *
 * The writer (this feed's one writer) replaces the only bid order again
 * and again with MoldUDP64 packets of ITCH Order Replace messages: the
 * k-th replace moves the bid to Price(4) k ($0.0001 k) with k % 997 + 1 shares and
 * carries ITCH timestamp k, so every consistent top of book satisfies
 * bid_qty == (bid_px / 10^4) % 997 + 1 and itch_ts == bid_px / 10^4.  Two
 * reader threads check that on every oms_tob_read() and that `updates`
 * never goes back.  Prints "reads N retries N torn N"; exits 1 on any torn
 * or backward read.  Usage: tob_seqlock UPDATES */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "net.h"

static struct oms_feed *feed;
static const struct oms_tob *tob;
static volatile int done;

struct reader {
	pthread_t th;
	unsigned long reads, retries, torn, racy_torn;
};

static int consistent(int64_t px, uint32_t qty, uint64_t ts)
{
	uint64_t k = (uint64_t)px / ITCH_PRICE_TO_FIXED;
	return !qty || (qty == k % 997 + 1 && ts == k && (uint64_t)px == k * ITCH_PRICE_TO_FIXED);
}

/* The same fields read without the lock: what the check catches when a
 * reader does not retry (printed, to show the check has teeth). */
static void racy_read(const struct oms_tob *t, struct reader *r)
{
	int64_t px = __atomic_load_n(&t->bid_px, __ATOMIC_RELAXED);
	uint32_t qty = __atomic_load_n(&t->bid_qty, __ATOMIC_RELAXED);
	uint64_t ts = __atomic_load_n(&t->itch_ts, __ATOMIC_RELAXED);
	r->racy_torn += !consistent(px, qty, ts);
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t last_updates = 0;

	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		struct oms_tob_view v;
		r->retries += oms_tob_read(tob, &v);
		r->reads++;
		if (v.updates < last_updates || !consistent(v.bid_px, v.bid_qty, v.itch_ts))
			r->torn++;
		last_updates = v.updates;
		racy_read(tob, r);
	}
	return NULL;
}

static uint32_t packet(uint8_t *p, uint64_t seq, const uint8_t *msg, uint16_t len)
{
	memcpy(p, "SEQLOCK001", 10);
	wr_be64(p + MOLD_OFF_SEQ, seq);
	wr_be16(p + MOLD_OFF_COUNT, 1);
	wr_be16(p + MOLD_HLEN, len);
	memcpy(p + MOLD_HLEN + 2, msg, len);
	return MOLD_HLEN + 2 + len;
}

static void header(uint8_t *m, char type, uint64_t ts)
{
	memset(m, 0, 64);
	m[0] = (uint8_t)type;
	wr_be16(m + ITCH_OFF_LOCATE, 1);
	wr_be16(m + ITCH_OFF_TIMESTAMP, (uint16_t)(ts >> 32));
	wr_be32(m + ITCH_OFF_TIMESTAMP + 2, (uint32_t)ts);
}

int main(int argc, char **argv)
{
	uint64_t updates = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	struct oms_feed_config cfg = {.max_symbols = 1, .max_orders = 16, .max_levels = 4};
	uint8_t m[64], p[128];
	uint64_t seq = 1;

	feed = oms_feed_create(&cfg);
	if (!feed || oms_feed_subscribe(feed, "SEQL    ", 0))
		return 2;
	tob = oms_feed_tob(feed, 0);

	header(m, 'R', 0);
	memcpy(m + ITCH_DIRECTORY_OFF_STOCK, "SEQL    ", 8);
	oms_feed_process_packet(feed, p, packet(p, seq++, m, ITCH_DIRECTORY_LEN), 1);
	header(m, 'A', 1);
	wr_be64(m + ITCH_ADD_OFF_REF, 1);
	m[ITCH_ADD_OFF_SIDE] = 'B';
	wr_be32(m + ITCH_ADD_OFF_SHARES, 1 % 997 + 1);
	memcpy(m + ITCH_ADD_OFF_STOCK, "SEQL    ", 8);
	wr_be32(m + ITCH_ADD_OFF_PRICE, 1);
	oms_feed_process_packet(feed, p, packet(p, seq++, m, ITCH_ADD_LEN), 2);

	struct reader readers[2];
	memset(readers, 0, sizeof(readers));
	for (int i = 0; i < 2; i++)
		pthread_create(&readers[i].th, NULL, reader_main, &readers[i]);
	for (uint64_t k = 2; k < updates + 2; k++) {
		header(m, 'U', k);
		wr_be64(m + ITCH_REPLACE_OFF_ORIG_REF, k - 1);
		wr_be64(m + ITCH_REPLACE_OFF_NEW_REF, k);
		wr_be32(m + ITCH_REPLACE_OFF_SHARES, (uint32_t)(k % 997 + 1));
		wr_be32(m + ITCH_REPLACE_OFF_PRICE, (uint32_t)k);
		oms_feed_process_packet(feed, p, packet(p, seq++, m, ITCH_REPLACE_LEN), k);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	unsigned long reads = 0, retries = 0, torn = 0, racy = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(readers[i].th, NULL);
		reads += readers[i].reads;
		retries += readers[i].retries;
		torn += readers[i].torn;
		racy += readers[i].racy_torn;
	}
	struct oms_tob_view v;
	oms_tob_read(tob, &v);
	int ok = v.itch_ts == updates + 1 && v.updates >= updates;
	printf("updates %lu\nreads %lu\nretries %lu\ntorn %lu\nracy_torn %lu\nfinal_ok %d\n",
	       (unsigned long)updates, reads, retries, torn, racy, ok);
	oms_feed_destroy(feed);
	return torn || !ok;
}
