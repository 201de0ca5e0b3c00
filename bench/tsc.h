/* The TSC for the C benchmarks: a fenced read, and its rate measured
 * against CLOCK_MONOTONIC over 200 ms. */
#ifndef OMS_BENCH_TSC_H
#define OMS_BENCH_TSC_H

#include <stdint.h>
#include <time.h>
#include <x86intrin.h>

static inline uint64_t tsc(void)
{
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
}

/* cycles per nanosecond */
static inline double tsc_ghz(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	uint64_t t0 = __rdtsc();
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec) < 2e8);
	uint64_t t1 = __rdtsc();
	return (t1 - t0) / ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec));
}

#endif
