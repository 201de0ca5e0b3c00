/* What the exporter reads from DPDK (cdefs/dpdk_obs.c): a port's full
 * counters and extended statistics, ring depths, mempool size, the TSC
 * rate.  Read from the control plane's thread; the ethdev calls it makes
 * are the ones DPDK allows beside a polling lcore. */
#ifndef OMS_DPDK_OBS_H
#define OMS_DPDK_OBS_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

struct rte_mempool;
struct rte_ring;

struct oms_port_counters {
	uint64_t ipackets;
	uint64_t opackets;
	uint64_t ibytes;
	uint64_t obytes;
	uint64_t imissed;
	uint64_t ierrors;
	uint64_t oerrors;
	uint64_t rx_nombuf;
};

struct oms_xstat {
	char name[64];
	uint64_t value;
};

int oms_port_counters(uint16_t port, struct oms_port_counters *out);
/* Up to n extended statistics into out; returns how many the port has
 * (more than n: call again with room), or -1. */
int oms_port_xstats(uint16_t port, struct oms_xstat *out, unsigned n);
/* Descriptors filled and waiting in RX queue `queue`; -1 where the
 * driver cannot tell. */
int oms_port_rx_queue_depth(uint16_t port, uint16_t queue);
/* (entries waiting: oms_ring_count, in oms_dpdk.h) */
unsigned oms_ring_capacity(const struct rte_ring *r);
unsigned oms_pool_size(const struct rte_mempool *p);
uint64_t oms_tsc_hz(void);

#endif
