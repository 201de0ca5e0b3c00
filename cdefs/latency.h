/* Log-linear latency histogram (HdrHistogram's bucketing, fixed size):
 * values below 2^LAT_SUB_BITS land in exact buckets, larger ones in one of
 * 2^LAT_SUB_BITS linear sub-buckets of their power of two, so every bucket
 * is at most 1/16 (6.25 %) wide relative to its value.  Recording is a
 * few instructions and touches one counter. */
#ifndef OMS_LATENCY_H
#define OMS_LATENCY_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#define LAT_SUB_BITS 4
#define LAT_SUB (1u << LAT_SUB_BITS)
#define LAT_BUCKETS ((64 - LAT_SUB_BITS + 1) * LAT_SUB)

struct lat_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t max;
	uint64_t bucket[LAT_BUCKETS];
};

#ifndef OMS_CFFI
static inline uint32_t lat_bucket_of(uint64_t v)
{
	if (v < LAT_SUB)
		return (uint32_t)v;
	uint32_t k = 63u - (uint32_t)__builtin_clzll(v); /* k >= LAT_SUB_BITS */
	uint32_t sub = (uint32_t)(v >> (k - LAT_SUB_BITS)) & (LAT_SUB - 1);
	return (k - LAT_SUB_BITS + 1) * LAT_SUB + sub;
}

static inline void lat_record(struct lat_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	h->bucket[lat_bucket_of(v)]++;
}

/* n values of v at once (n > 0). */
static inline void lat_record_n(struct lat_hist *h, uint64_t v, uint64_t n)
{
	h->count += n;
	h->sum += v * n;
	if (v > h->max)
		h->max = v;
	h->bucket[lat_bucket_of(v)] += n;
}

/* Lowest value that falls into bucket b. */
uint64_t lat_bucket_low(uint32_t b);
#endif

#endif
