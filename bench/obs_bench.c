/* Observability overhead: the core on the benchmark traffic (bench/gen.c)
 * with the stage histograms off and on (oms_core_set_timing).  Two cores,
 * one of each, get the same bursts in turn (which goes first alternates),
 * so both see the same machine at the same moment - on a shared machine
 * whole-run comparisons mostly measure the neighbours.  Each burst is
 * timed as a worker uses the core: oms_core_process_burst, then
 * oms_core_tx_clear (where the transmit stages are recorded).  Bursts in
 * which either core was interrupted (over 8 times its median burst) are
 * left out of both sums, and counted.  Repeated RUNS times on fresh cores;
 * the median run is reported.
 *
 * usage: obs_bench ORDERS [CAPACITY [RUNS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#include "gen.h"
#include "oms_core.h"

#define BURST GEN_BURST
#define MAX_RUNS 64

struct run {
	double overhead_pct;
	double off_per_frame, on_per_frame; /* cycles */
	uint32_t skipped;
	uint64_t recorded;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_run(const void *a, const void *b)
{
	double x = ((const struct run *)a)->overhead_pct, y = ((const struct run *)b)->overhead_pct;
	return x < y ? -1 : x > y;
}

static uint64_t median(const uint64_t *v, uint32_t n, uint64_t *scratch)
{
	memcpy(scratch, v, n * sizeof(*v));
	qsort(scratch, n, sizeof(*v), cmp_u64);
	return scratch[n / 2];
}

static uint64_t timed_burst(struct oms_core *c, const uint8_t **frames, const uint16_t *len,
			    uint32_t n, uint64_t now)
{
	uint64_t t0 = __rdtsc();
	oms_core_process_burst(c, frames, len, n, now);
	oms_core_tx_clear(c);
	return __rdtsc() - t0;
}

static struct run run_once(const struct gen_frames *f, const uint8_t **ptrs, uint32_t capacity,
			   uint64_t *off, uint64_t *on, uint64_t *scratch)
{
	struct oms_core *c_off = gen_make_core(capacity), *c_on = gen_make_core(capacity);
	uint32_t bursts = 0;
	struct run r = {0};

	oms_core_set_timing(c_on, 1);
	for (uint32_t i = 0; i < f->n; i += BURST, bursts++) {
		uint32_t n = f->n - i < BURST ? f->n - i : BURST;
		if (bursts & 1) {
			on[bursts] = timed_burst(c_on, ptrs + i, f->len + i, n, i);
			off[bursts] = timed_burst(c_off, ptrs + i, f->len + i, n, i);
		} else {
			off[bursts] = timed_burst(c_off, ptrs + i, f->len + i, n, i);
			on[bursts] = timed_burst(c_on, ptrs + i, f->len + i, n, i);
		}
	}
	uint64_t lim_off = 8 * median(off, bursts, scratch), lim_on = 8 * median(on, bursts, scratch);
	uint64_t sum_off = 0, sum_on = 0, frames = 0;
	for (uint32_t b = 0; b < bursts; b++) {
		if (off[b] > lim_off || on[b] > lim_on) {
			r.skipped++;
			continue;
		}
		sum_off += off[b];
		sum_on += on[b];
		uint32_t i = b * BURST;
		frames += f->n - i < BURST ? f->n - i : BURST;
	}
	r.off_per_frame = (double)sum_off / (double)frames;
	r.on_per_frame = (double)sum_on / (double)frames;
	r.overhead_pct = 100.0 * ((double)sum_on - (double)sum_off) / (double)sum_off;
	r.recorded = oms_core_stage(c_on, OMS_STAGE_IN_TO_OUT)->count;
	oms_core_destroy(c_off);
	oms_core_destroy(c_on);
	return r;
}

int main(int argc, char **argv)
{
	uint32_t orders = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 300000;
	uint32_t capacity = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 65536;
	uint32_t runs = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 5;
	uint32_t in_flight = capacity / 4 < 4096 ? capacity / 4 : 4096;
	struct gen_frames f = {0};
	struct run r[MAX_RUNS];

	if (runs == 0 || runs > MAX_RUNS)
		runs = 5;
	gen_generate(&f, orders, in_flight);
	const uint8_t **ptrs = malloc((size_t)f.n * sizeof(*ptrs));
	uint32_t nb = f.n / BURST + 1;
	uint64_t *off = malloc(nb * sizeof(*off)), *on = malloc(nb * sizeof(*on));
	uint64_t *scratch = malloc(nb * sizeof(*scratch));
	for (uint32_t i = 0; i < f.n; i++)
		ptrs[i] = gen_frame(&f, i);
	for (uint32_t k = 0; k < runs; k++)
		r[k] = run_once(&f, ptrs, capacity, off, on, scratch);
	qsort(r, runs, sizeof(r[0]), cmp_run);
	const struct run *m = &r[runs / 2];
	double hz = gen_tsc_hz();
	printf("frames %u\n", f.n);
	printf("orders %u\n", f.orders);
	printf("strategy_msgs %u\n", f.strategy_msgs);
	printf("runs %u\n", runs);
	printf("tsc_hz %.0f\n", hz);
	printf("cycles_per_frame_off %.2f\n", m->off_per_frame);
	printf("cycles_per_frame_on %.2f\n", m->on_per_frame);
	printf("ns_per_frame_off %.2f\n", m->off_per_frame * 1e9 / hz);
	printf("ns_per_frame_on %.2f\n", m->on_per_frame * 1e9 / hz);
	printf("overhead_pct %.2f\n", m->overhead_pct);
	printf("overhead_pct_min %.2f\n", r[0].overhead_pct);
	printf("overhead_pct_max %.2f\n", r[runs - 1].overhead_pct);
	printf("bursts_skipped %u\n", m->skipped);
	printf("recorded_on %lu\n", (unsigned long)m->recorded);
	return 0;
}
