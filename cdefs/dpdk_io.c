/* DPDK set-up for the data plane: EAL, mempools, ring ports, and the
 * main-lcore side of replay through a ring port.  Set-up fails loudly with
 * the reason; nothing here runs per packet except inject/collect, which
 * are the replay harness's (a NIC's DMA in a live run). */
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_eth_ring.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <time.h>

#include "oms_dpdk.h"

/* RX/TX descriptors per queue: a few bursts' worth beyond the ring ports'
 * needs; real NICs get theirs from config. */
#define RX_DESC 1024
#define TX_DESC 1024
#define MBUF_CACHE 256

int oms_ts_offset = -1;

int oms_eal_init(int argc, char **argv)
{
	int r = rte_eal_init(argc, argv);
	uint64_t flag;

	if (r < 0)
		return r;
	if (rte_mbuf_dyn_rx_timestamp_register(&oms_ts_offset, &flag) != 0)
		return -1;
	return r;
}

int oms_eal_cleanup(void)
{
	return rte_eal_cleanup();
}

unsigned oms_next_worker_lcore(unsigned after)
{
	return rte_get_next_lcore(after, 1, 0);
}

struct rte_mempool *oms_pool_create(const char *name, unsigned n, int socket)
{
	return rte_pktmbuf_pool_create(name, n, MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       socket);
}

unsigned oms_pool_in_use(const struct rte_mempool *p)
{
	return rte_mempool_in_use_count(p);
}

struct rte_ring *oms_ring_create(const char *name, unsigned size, int socket, int single)
{
	return rte_ring_create(name, size, socket, single ? RING_F_SP_ENQ | RING_F_SC_DEQ : 0);
}

void oms_ring_free(struct rte_ring *r)
{
	rte_ring_free(r);
}

int oms_port_from_rings(const char *name, struct rte_ring *rx, struct rte_ring *tx, int socket)
{
	struct rte_ring *rxq[1] = {rx}, *txq[1] = {tx};

	return rte_eth_from_rings(name, rxq, 1, txq, 1, (unsigned)socket);
}

int oms_port_by_name(const char *name)
{
	uint16_t port;

	if (rte_eth_dev_get_port_by_name(name, &port) != 0)
		return -1;
	return port;
}

int oms_port_socket(uint16_t port)
{
	return rte_eth_dev_socket_id(port);
}

static int port_fail(char *err, unsigned errlen, uint16_t port, const char *driver,
		     const char *what, int r)
{
	snprintf(err, errlen, "port %u (%s): %s: %s", port, driver, what, rte_strerror(-r));
	return -1;
}

int oms_port_link(uint16_t port, struct oms_port_info *info, unsigned wait_ms)
{
	struct rte_eth_link link;
	unsigned waited = 0;

	for (;;) {
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(port, &link) != 0)
			return -1;
		if (link.link_status == RTE_ETH_LINK_UP || waited >= wait_ms)
			break;
		rte_delay_ms(10);
		waited += 10;
	}
	info->link_up = link.link_status == RTE_ETH_LINK_UP;
	info->link_full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
	info->link_autoneg = link.link_autoneg == RTE_ETH_LINK_AUTONEG;
	info->link_speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
	return 0;
}

int oms_port_start_conf(uint16_t port, struct rte_mempool *pool, const struct oms_port_conf *pc,
			struct oms_port_info *info, char *err, unsigned errlen)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info dev;
	struct oms_port_info scratch;
	int r;

	if (!info)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	memset(&conf, 0, sizeof(conf));
	if ((r = rte_eth_dev_info_get(port, &dev)) != 0) {
		snprintf(err, errlen, "port %u: no device info: %s", port, rte_strerror(-r));
		return -1;
	}
	snprintf(info->driver, sizeof(info->driver), "%s", dev.driver_name);
	info->min_mtu = dev.min_mtu;
	info->max_mtu = dev.max_mtu;
	info->max_rx_queues = dev.max_rx_queues;
	info->rss_offered = dev.flow_type_rss_offloads;
	info->max_frame = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
	uint16_t mtu = pc->mtu ? pc->mtu : RTE_ETHER_MTU;
	/* no scattered RX: a frame must fit one mbuf, or the NIC drops it */
	if ((uint32_t)mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 2 * 4 > info->max_frame) {
		snprintf(err, errlen, "port %u (%s): MTU %u does not fit an mbuf of %u bytes "
			 "(frames are not scattered over mbufs): lower dataplane.mtu",
			 port, info->driver, mtu, info->max_frame);
		return -1;
	}
	if (mtu < dev.min_mtu || mtu > dev.max_mtu) {
		snprintf(err, errlen, "port %u (%s): MTU %u is outside what the device takes "
			 "(%u to %u): change dataplane.mtu", port, info->driver, mtu, dev.min_mtu,
			 dev.max_mtu);
		return -1;
	}
	uint16_t nq = pc->rx_queues ? pc->rx_queues : 1;
	if (nq > OMS_MAX_RX)
		nq = OMS_MAX_RX;
	if (nq > dev.max_rx_queues)
		nq = dev.max_rx_queues;
	if (nq > 1) {
		/* several queues are useful only if flows spread over them */
		info->rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & dev.flow_type_rss_offloads;
		if (info->rss_hf) {
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = info->rss_hf;
		}
	}
	info->rx_queues = nq;
	conf.rxmode.mtu = mtu;
	if ((r = rte_eth_dev_configure(port, nq, 1, &conf)) != 0)
		return port_fail(err, errlen, port, info->driver, "configure", r);
	/* drivers without MTU control (ring, null) carry any frame that fits */
	r = rte_eth_dev_set_mtu(port, mtu);
	if (r != 0 && r != -ENOTSUP)
		return port_fail(err, errlen, port, info->driver, "set MTU", r);
	info->mtu_settable = r == 0;
	uint16_t nrx = RX_DESC, ntx = TX_DESC;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < nq; q++)
		if ((r = rte_eth_rx_queue_setup(port, q, nrx, socket, NULL, pool)) != 0)
			return port_fail(err, errlen, port, info->driver, "RX queue set-up", r);
	if ((r = rte_eth_tx_queue_setup(port, 0, ntx, socket, NULL)) != 0)
		return port_fail(err, errlen, port, info->driver, "TX queue set-up", r);
	if ((r = rte_eth_dev_start(port)) != 0)
		return port_fail(err, errlen, port, info->driver, "start", r);
	/* only our own addresses: the core drops the rest anyway, but the
	 * NIC should not make it look at them */
	rte_eth_promiscuous_disable(port);
	if (rte_eth_dev_get_mtu(port, &info->mtu) != 0)
		info->mtu = mtu;
	oms_port_link(port, info, 0);
	return 0;
}

int oms_port_start(uint16_t port, struct rte_mempool *pool, char *err, unsigned errlen)
{
	struct oms_port_conf pc = {0, 1};

	return oms_port_start_conf(port, pool, &pc, NULL, err, errlen);
}

void oms_port_stop(uint16_t port)
{
	rte_eth_dev_stop(port);
}

void oms_port_close(uint16_t port)
{
	rte_eth_dev_close(port);
}

int oms_port_stats(uint16_t port, uint64_t *ipackets, uint64_t *opackets, uint64_t *imissed,
		   uint64_t *oerrors)
{
	struct rte_eth_stats st;

	if (rte_eth_stats_get(port, &st) != 0)
		return -1;
	*ipackets = st.ipackets;
	*opackets = st.opackets;
	*imissed = st.imissed;
	*oerrors = st.oerrors;
	return 0;
}

int oms_port_set_mc_list(uint16_t port, const uint8_t *macs, uint32_t n)
{
	struct rte_ether_addr addrs[OMS_MAX_MC_ADDRS];

	if (n > OMS_MAX_MC_ADDRS)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		memcpy(addrs[i].addr_bytes, macs + 6 * i, 6);
	return rte_eth_dev_set_mc_addr_list(port, n ? addrs : NULL, n);
}

int oms_inject(struct rte_mempool *pool, struct rte_ring *ring, const uint8_t *const *frames,
	       const uint16_t *lens, uint32_t n, uint64_t ts_ns)
{
	struct rte_mbuf *m[OMS_BURST];

	if (n > OMS_BURST || rte_pktmbuf_alloc_bulk(pool, m, n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		char *d = rte_pktmbuf_append(m[i], lens[i]);
		if (!d) {
			rte_pktmbuf_free_bulk(m, n);
			return -1;
		}
		memcpy(d, frames[i], lens[i]);
		*RTE_MBUF_DYNFIELD(m[i], oms_ts_offset, uint64_t *) = ts_ns;
	}
	if (rte_ring_enqueue_bulk(ring, (void **)m, n, NULL) != n) {
		rte_pktmbuf_free_bulk(m, n);
		return -1;
	}
	return 0;
}

uint32_t oms_collect_ts(struct rte_ring *ring, uint8_t *out, uint16_t *lens, uint64_t *ts_ns,
			uint32_t max)
{
	struct rte_mbuf *m[OMS_BURST];
	uint32_t got = 0;

	while (got < max) {
		uint32_t want = max - got < OMS_BURST ? max - got : OMS_BURST;
		uint32_t n = rte_ring_dequeue_burst(ring, (void **)m, want, NULL);
		if (n == 0)
			break;
		for (uint32_t i = 0; i < n; i++, got++) {
			uint32_t len = rte_pktmbuf_pkt_len(m[i]);
			if (len > OMS_TX_SLOT)
				len = OMS_TX_SLOT;
			uint8_t *dst = out + (size_t)got * OMS_TX_SLOT;
			const void *src = rte_pktmbuf_read(m[i], 0, len, dst);
			if (src != dst)
				memcpy(dst, src, len);
			lens[got] = (uint16_t)len;
			if (ts_ns)
				ts_ns[got] = *RTE_MBUF_DYNFIELD(m[i], oms_ts_offset, uint64_t *);
		}
		rte_pktmbuf_free_bulk(m, n);
	}
	return got;
}

uint32_t oms_collect(struct rte_ring *ring, uint8_t *out, uint16_t *lens, uint32_t max)
{
	return oms_collect_ts(ring, out, lens, NULL, max);
}

int oms_command(struct rte_ring *ring, struct oms_command *cmd)
{
	cmd->done = 0;
	return rte_ring_enqueue(ring, cmd);
}

int oms_worker_running(unsigned lcore)
{
	return rte_eal_get_lcore_state(lcore) == RUNNING;
}

int oms_worker_wait(unsigned lcore)
{
	return rte_eal_wait_lcore(lcore);
}

/* The rte_flow pattern and action of one rule; the item specs live in the
 * caller's frame. */
struct flow_spec {
	struct rte_flow_attr attr;
	struct rte_flow_item_ipv4 ip_spec, ip_mask;
	struct rte_flow_item_udp udp_spec, udp_mask;
	struct rte_flow_item pattern[4];
	struct rte_flow_action_queue queue;
	struct rte_flow_action actions[2];
};

static void flow_build(struct flow_spec *f, const struct oms_flow_rule *r)
{
	memset(f, 0, sizeof(*f));
	f->attr.ingress = 1;
	f->pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
	f->pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
	if (r->dst_ip_mask) {
		f->ip_spec.hdr.dst_addr = rte_cpu_to_be_32(r->dst_ip);
		f->ip_mask.hdr.dst_addr = rte_cpu_to_be_32(r->dst_ip_mask);
		f->pattern[1].spec = &f->ip_spec;
		f->pattern[1].mask = &f->ip_mask;
	}
	f->pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
	if (r->udp_dst_port) {
		f->udp_spec.hdr.dst_port = rte_cpu_to_be_16(r->udp_dst_port);
		f->udp_mask.hdr.dst_port = 0xffff;
		f->pattern[2].spec = &f->udp_spec;
		f->pattern[2].mask = &f->udp_mask;
	}
	f->pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
	f->queue.index = r->queue;
	f->actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
	f->actions[0].conf = &f->queue;
	f->actions[1].type = RTE_FLOW_ACTION_TYPE_END;
}

int oms_flow_validate(uint16_t port, const struct oms_flow_rule *r, char *err, unsigned errlen)
{
	struct flow_spec f;
	struct rte_flow_error e;

	flow_build(&f, r);
	memset(&e, 0, sizeof(e));
	if (rte_flow_validate(port, &f.attr, f.pattern, f.actions, &e) == 0)
		return 0;
	snprintf(err, errlen, "%s", e.message ? e.message : rte_strerror(rte_errno));
	return -1;
}

int oms_flow_create(uint16_t port, const struct oms_flow_rule *r, char *err, unsigned errlen)
{
	struct flow_spec f;
	struct rte_flow_error e;

	flow_build(&f, r);
	memset(&e, 0, sizeof(e));
	if (rte_flow_create(port, &f.attr, f.pattern, f.actions, &e) != NULL)
		return 0;
	snprintf(err, errlen, "%s", e.message ? e.message : rte_strerror(rte_errno));
	return -1;
}

struct rte_rcu_qsbr *oms_rcu_create(unsigned threads)
{
	size_t sz = rte_rcu_qsbr_get_memsize(threads);
	struct rte_rcu_qsbr *v = rte_zmalloc("oms_rcu", sz, RTE_CACHE_LINE_SIZE);

	if (v && rte_rcu_qsbr_init(v, threads) != 0) {
		rte_free(v);
		return NULL;
	}
	return v;
}

void oms_rcu_free(struct rte_rcu_qsbr *v)
{
	rte_free(v);
}

int oms_rcu_wait(struct rte_rcu_qsbr *v, unsigned timeout_ms)
{
	uint64_t token = rte_rcu_qsbr_start(v);
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (rte_rcu_qsbr_check(v, token, false) != 1) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		int64_t ns = (int64_t)(t.tv_sec - t0.tv_sec) * 1000000000 +
			     (t.tv_nsec - t0.tv_nsec);
		if (ns > (int64_t)timeout_ms * 1000000)
			return -1;
		rte_pause();
	}
	return 0;
}
