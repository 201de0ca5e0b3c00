/* Core benchmark: the C order pipeline alone, in one process, on one core.
 *
 * The generator (bench/gen.c, shared with bench/dpdk_bench.c) builds every
 * frame up front (checksummed Ethernet/IPv4/UDP, exactly as a NIC would
 * deliver them), handed over in bursts of BURST: unique, valid orders from
 * several strategy sessions with a realistic life each - the venue
 * accepts, some are modified and replaced, most fill in one or two
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
 *   core:     the same one frame per burst (single_ns_per_frame);
 *   core:     again with per-message TSC timing on (cycles per order).
 * and prints one "name value" line per figure.
 *
 * usage: core_bench ORDERS [CAPACITY]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#include "gen.h"
#include "net.h"
#include "oms_core.h"

#define BURST GEN_BURST /* frames per burst, as the DPDK loop will use */
#define FRAME_MAX GEN_FRAME_MAX
#define APP_IP GEN_APP_IP
#define APP_MAC GEN_APP_MAC
/* orders alive at once: a quarter of the table, at most 4096 */
static uint32_t in_flight = 4096;

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

int main(int argc, char **argv)
{
	uint32_t orders = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
	uint32_t capacity = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 65536;
	struct gen_frames f = {0};

	if (in_flight > capacity / 4)
		in_flight = capacity / 4;

	gen_generate(&f, orders, in_flight);
	const uint8_t **ptrs = malloc((size_t)f.n * sizeof(*ptrs));
	for (uint32_t i = 0; i < f.n; i++)
		ptrs[i] = f.buf + (size_t)i * FRAME_MAX;
	double hz = gen_tsc_hz();

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

	struct oms_core *c = gen_make_core(capacity);
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

	/* the same one frame at a time: what a worker sees at moderate rates,
	 * where a poll finds one or two frames and their misses cannot overlap */
	struct oms_core *c1 = gen_make_core(capacity);
	uint64_t single_cycles = 0;
	for (uint32_t i = 0; i < f.n; i++) {
		const uint8_t **rx = nic_receive(ptrs + i, f.len + i, 1);
		uint64_t t0 = __rdtsc();
		oms_core_process_burst(c1, rx, f.len + i, 1, (uint64_t)i);
		oms_core_tx_clear(c1);
		single_cycles += __rdtsc() - t0;
	}
	oms_core_destroy(c1);

	/* the same with NIC checksum offload: what a DPDK port with IPv4/UDP
	 * checksum offload leaves to the core */
	struct oms_core *co = gen_make_core_opt(capacity, OMS_CSUM_RX_VERIFIED |
							  OMS_CSUM_TX_OFFLOAD);
	uint64_t off_cycles = 0;
	for (uint32_t i = 0; i < f.n; i += BURST) {
		uint32_t n = f.n - i < BURST ? f.n - i : BURST;
		const uint8_t **rx = nic_receive(ptrs + i, f.len + i, n);
		uint64_t t0 = __rdtsc();
		oms_core_process_burst(co, rx, f.len + i, n, (uint64_t)i);
		oms_core_tx_clear(co);
		off_cycles += __rdtsc() - t0;
	}
	oms_core_destroy(co);

	struct oms_core *ct = gen_make_core(capacity);
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
	printf("single_ns_per_frame %.1f\n", (double)single_cycles / hz * 1e9 / f.n);
	printf("baseline_msgs_per_s %.0f\n", f.n / base_s);
	printf("baseline_ns_per_frame %.1f\n", base_s * 1e9 / f.n);
	printf("ratio_core_to_baseline %.2f\n", (double)core_cycles / (double)base_cycles);
	double off_s = (double)off_cycles / hz;
	printf("offload_orders_per_s %.0f\n", f.orders / off_s);
	printf("offload_msgs_per_s %.0f\n", f.n / off_s);
	printf("offload_ns_per_frame %.1f\n", off_s * 1e9 / f.n);
	printf("cycles_p50 %lu\n", (unsigned long)gen_percentile(h, 50));
	printf("cycles_p99 %lu\n", (unsigned long)gen_percentile(h, 99));
	printf("cycles_p99_9 %lu\n", (unsigned long)gen_percentile(h, 99.9));
	printf("ns_p99 %.1f\n", (double)gen_percentile(h, 99) * 1e9 / hz);
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
	gen_free(&f);
	free(tx);
	return 0;
}
