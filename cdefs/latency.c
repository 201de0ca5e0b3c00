#include "latency.h"

uint64_t lat_bucket_low(uint32_t b)
{
	if (b < LAT_SUB)
		return b;
	uint32_t k = b / LAT_SUB + LAT_SUB_BITS - 1;
	uint64_t sub = b % LAT_SUB;
	return (1ull << k) | (sub << (k - LAT_SUB_BITS));
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
uint64_t oms_cycles(void)
{
	return __rdtsc();
}
#else
#include <time.h>
uint64_t oms_cycles(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif
