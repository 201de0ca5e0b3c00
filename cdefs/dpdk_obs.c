#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "dpdk_obs.h"

/* on the stack per call: ports have tens of xstats, not thousands */
#define XSTATS_MAX 512

int oms_port_counters(uint16_t port, struct oms_port_counters *out)
{
	struct rte_eth_stats st;

	if (rte_eth_stats_get(port, &st) != 0)
		return -1;
	out->ipackets = st.ipackets;
	out->opackets = st.opackets;
	out->ibytes = st.ibytes;
	out->obytes = st.obytes;
	out->imissed = st.imissed;
	out->ierrors = st.ierrors;
	out->oerrors = st.oerrors;
	out->rx_nombuf = st.rx_nombuf;
	return 0;
}

int oms_port_xstats(uint16_t port, struct oms_xstat *out, unsigned n)
{
	struct rte_eth_xstat vals[XSTATS_MAX];
	struct rte_eth_xstat_name names[XSTATS_MAX];
	int total = rte_eth_xstats_get(port, NULL, 0);

	if (total < 0)
		return -1;
	if ((unsigned)total > n || total > XSTATS_MAX)
		return total;
	if (rte_eth_xstats_get_names(port, names, (unsigned)total) != total ||
	    rte_eth_xstats_get(port, vals, (unsigned)total) != total)
		return -1;
	for (int i = 0; i < total; i++) {
		const char *name = names[vals[i].id].name;
		strncpy(out[i].name, name, sizeof(out[i].name) - 1);
		out[i].name[sizeof(out[i].name) - 1] = 0;
		out[i].value = vals[i].value;
	}
	return total;
}

int oms_port_rx_queue_depth(uint16_t port, uint16_t queue)
{
	int n = rte_eth_rx_queue_count(port, queue);

	return n < 0 ? -1 : n;
}

unsigned oms_ring_capacity(const struct rte_ring *r)
{
	return rte_ring_get_capacity(r);
}

unsigned oms_pool_size(const struct rte_mempool *p)
{
	return p->size;
}

uint64_t oms_tsc_hz(void)
{
	return rte_get_tsc_hz();
}
