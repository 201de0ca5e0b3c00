/* The benchmarks' traffic generator (bench/gen.c), shared by the core
 * benchmark (bench/core_bench.c) and the DPDK benchmark (bench/dpdk_bench.c).
 *
 * It builds every frame up front, checksummed Ethernet/IPv4/UDP exactly as
 * a NIC would deliver them: unique, valid orders from several strategy
 * sessions with a realistic life each - the venue accepts, some are
 * modified and replaced, most fill in one or two executions, the rest are
 * canceled - with many orders in flight at once.  The venue's UserRefNums
 * are predicted the way the core assigns them (one counter per venue, +1
 * per Enter or Replace), so every venue message finds its order.  Any
 * prefix of the frames is valid traffic on its own. */
#ifndef OMS_BENCH_GEN_H
#define OMS_BENCH_GEN_H

#include <stdint.h>

#include "oms_core.h"

#define GEN_BURST 32 /* frames per burst, as the DPDK loop uses (OMS_BURST) */
#define GEN_SESSIONS 4
#define GEN_FRAME_MAX 160 /* frame i is at buf + i * GEN_FRAME_MAX */

/* the appliance, its venue and its strategy sessions */
#define GEN_APP_IP 0x0a0a0001u
#define GEN_VEN_IP 0x0a0a0201u
#define GEN_SESS_IP(i) (0x0a0a0101u + (uint32_t)(i))
#define GEN_SP_PORT 9000
#define GEN_VENUE_PORT 9100
#define GEN_SESS_PORT 9001
#define GEN_VEN_PEER_PORT 9200
extern const uint8_t GEN_APP_MAC[6];

struct gen_frames {
	uint8_t *buf;
	uint16_t *len;
	uint8_t *is_order;      /* 1 where the frame is a NewOrder */
	uint32_t n, cap;
	uint32_t orders;        /* NewOrders among them */
	uint32_t strategy_msgs; /* all strategy messages */
};

/* Frames for `orders` NewOrders with their lives, `in_flight` orders alive
 * at once (the caller keeps it at most a quarter of the table). */
void gen_generate(struct gen_frames *f, uint32_t orders, uint32_t in_flight);
void gen_free(struct gen_frames *f);

static inline const uint8_t *gen_frame(const struct gen_frames *f, uint32_t i)
{
	return f->buf + (size_t)i * GEN_FRAME_MAX;
}

/* A core configured for the generator's sessions, venue and instruments. */
struct oms_core *gen_make_core(uint32_t capacity);
/* The same with the NIC checksum offload flags (OMS_CSUM_*). */
struct oms_core *gen_make_core_opt(uint32_t capacity, uint8_t checksum_offload);

/* TSC frequency measured against CLOCK_MONOTONIC over 50 ms. */
double gen_tsc_hz(void);
/* Lowest value of the bucket holding the p-th percentile. */
uint64_t gen_percentile(const struct lat_hist *h, double p);

#endif
