#include "latency.h"

uint64_t lat_bucket_low(uint32_t b)
{
	if (b < LAT_SUB)
		return b;
	uint32_t k = b / LAT_SUB + LAT_SUB_BITS - 1;
	uint64_t sub = b % LAT_SUB;
	return (1ull << k) | (sub << (k - LAT_SUB_BITS));
}
