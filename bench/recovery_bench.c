/* Recovery benchmark: a journal of `events` frames (bench/gen.c's valid
 * orders and venue answers, in bursts of GEN_BURST, with a timer call every
 * TIMER_EVERY bursts as a live loop makes) is written by one core, then
 * recovered into a fresh core - from a warm page cache (a process crash)
 * and from a cold one (a machine crash) - and the recovered state compared
 * with the original.  Prints one "name value" line per figure.
 *
 *     recovery_bench EVENTS CAPACITY PATH [DURABILITY]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "journal.h"

#define TIMER_EVERY 64 /* bursts between two n = 0 timer calls */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Drop the file's pages from the page cache: what a machine restart finds. */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static int same_state(const struct oms_core *a, const struct oms_core *b)
{
	return !memcmp(oms_core_stats(a), oms_core_stats(b), sizeof(struct oms_stats)) &&
	       oms_core_live_orders(a) == oms_core_live_orders(b) &&
	       oms_core_next_deadline(a) == oms_core_next_deadline(b);
}

static double recover_once(const char *path, uint32_t capacity, const struct oms_core *want,
			   struct oms_journal_scan *s, int *equal)
{
	char err[256];
	struct oms_core *c = gen_make_core(capacity);
	uint64_t t0 = mono_ns();

	if (oms_journal_recover(c, path, 1, NULL, NULL, s, err, sizeof(err))) {
		fprintf(stderr, "recovery failed: %s\n", err);
		exit(1);
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	*equal = same_state(c, want);
	oms_core_destroy(c);
	return secs;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s EVENTS CAPACITY PATH [none|periodic|burst]\n", argv[0]);
		return 2;
	}
	uint64_t events = strtoull(argv[1], NULL, 10);
	uint32_t capacity = (uint32_t)strtoul(argv[2], NULL, 10);
	const char *path = argv[3];
	const char *dur = argc > 4 ? argv[4] : "none";
	struct oms_journal_config jc = {
		.durability = !strcmp(dur, "burst") ? OMS_JNL_BURST
			      : !strcmp(dur, "periodic") ? OMS_JNL_PERIODIC : OMS_JNL_NONE,
		.segment_mb = 256,
	};
	struct gen_frames f = {0};
	char err[256];

	/* about 4.25 frames per order in long runs (core_bench: 8.49 M frames
	 * for 2 M orders), fewer in short ones: enough orders, then a prefix */
	gen_generate(&f, (uint32_t)(events / 3 + 4096), capacity / 16);
	if (f.n < events) {
		fprintf(stderr, "generator made %u frames, fewer than %llu\n", f.n,
			(unsigned long long)events);
		return 1;
	}
	const uint8_t **ptrs = malloc(GEN_BURST * sizeof(*ptrs));

	unlink(path);
	struct oms_journal *j = oms_journal_open(path, &jc, err, sizeof(err));
	if (!j) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct oms_core *c = gen_make_core(capacity);
	oms_journal_attach(j, c);
	uint64_t journal_ns = 0, core_ns = 0, calls = 0, now = 1000000000ull;
	uint64_t t_all = mono_ns();
	for (uint64_t i = 0, b = 0; i < events; i += GEN_BURST, b++) {
		uint32_t n = events - i < GEN_BURST ? (uint32_t)(events - i) : GEN_BURST;
		for (uint32_t k = 0; k < n; k++)
			ptrs[k] = gen_frame(&f, (uint32_t)(i + k));
		now += 1000;
		uint64_t t0 = mono_ns();
		if (b % TIMER_EVERY == TIMER_EVERY - 1) {
			oms_core_process_burst(c, NULL, NULL, 0, now);
			oms_journal_burst(j, c, NULL, NULL, 0, now);
			oms_journal_commit(j);
			oms_core_tx_clear(c);
			calls++;
		}
		uint64_t t1 = mono_ns();
		oms_core_process_burst(c, ptrs, f.len + i, n, now);
		uint64_t t2 = mono_ns();
		oms_journal_burst(j, c, ptrs, f.len + i, n, now);
		oms_journal_commit(j);
		uint64_t t3 = mono_ns();
		oms_core_tx_clear(c);
		calls++;
		core_ns += t2 - t1;
		journal_ns += (t3 - t2) + (t1 - t0);
	}
	double write_s = (double)(mono_ns() - t_all) / 1e9;
	struct oms_journal_stats js;
	oms_journal_stats(j, &js);
	uint64_t t_close = mono_ns();
	oms_journal_close(j);
	double close_s = (double)(mono_ns() - t_close) / 1e9;

	struct oms_journal_scan s;
	int equal_warm, equal_cold;
	/* the walk alone (CRC of every record, no core): recovery's floor */
	uint64_t t_scan = mono_ns();
	if (oms_journal_scan(path, 0, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	double scan_s = (double)(mono_ns() - t_scan) / 1e9;
	double warm = recover_once(path, capacity, c, &s, &equal_warm);
	drop_cache(path);
	double cold = recover_once(path, capacity, c, &s, &equal_cold);

	printf("events %llu\n", (unsigned long long)events);
	printf("core_calls %llu\n", (unsigned long long)calls);
	printf("records %llu\n", (unsigned long long)s.records);
	printf("journal_bytes %llu\n", (unsigned long long)js.end);
	printf("bytes_per_event %.1f\n", (double)js.end / (double)events);
	printf("syncs %llu\n", (unsigned long long)js.syncs);
	printf("grows %llu\n", (unsigned long long)js.grows);
	printf("write_s %.3f\n", write_s);
	printf("append_ns_per_event %.1f\n", (double)journal_ns / (double)events);
	printf("grow_s %.3f\n", (double)js.grow_ns / 1e9);
	printf("grow_stalls %llu\n", (unsigned long long)js.grow_stalls);
	printf("core_ns_per_event %.1f\n", (double)core_ns / (double)events);
	printf("close_s %.3f\n", close_s);
	printf("scan_s %.3f\n", scan_s);
	printf("recover_warm_s %.3f\n", warm);
	printf("recover_cold_s %.3f\n", cold);
	printf("recover_events_per_s %.0f\n", (double)events / warm);
	printf("state_equal %d\n", equal_warm && equal_cold);
	printf("live_orders %u\n", oms_core_live_orders(c));
	oms_core_destroy(c);
	gen_free(&f);
	free(ptrs);
	return equal_warm && equal_cold ? 0 : 1;
}
