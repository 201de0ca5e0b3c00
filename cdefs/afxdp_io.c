/* The native AF_XDP backend: libxdp's xsk API on queue 0 of each interface,
 * one poll thread doing RX -> core -> TX run-to-completion, in the manner of
 * the DPDK worker (cdefs/worker.c): ARP and ICMP answered before the core
 * (cdefs/link.c), the core's frames sent on the interface of their traffic
 * class, commands from the control plane run between two bursts.
 *
 * UMEM layout per interface: frames [0, frames/2) are RX buffers, always
 * either on the fill ring, in the kernel or in the burst being handled;
 * frames [frames/2, frames) are TX buffers on a free stack, handed back by
 * the completion ring.  Every ring holds frames/2 entries, so returning an
 * RX buffer to the fill ring can never find it full. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "oms_afxdp.h"

/* polls with nothing to do before the poll thread starts sleeping */
#define IDLE_SPINS 1024
/* kicks of the kernel per tx_push while the TX ring asks for a wakeup */
#define TX_RETRIES 64
/* how long a frame that finds no TX buffer or descriptor waits for one,
 * kicking the kernel and reclaiming completions, unless configured */
#define TX_WAIT_US 1000
/* commands in flight from the control plane (it waits for each) */
#define MAILBOX 16

struct xsk_port {
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	uint8_t *area;
	size_t area_len;
	int fd;
	int ifindex;
	uint32_t tx_reserved; /* descriptors reserved, not yet submitted */
	int tx_stuck;         /* a whole wait freed nothing: one try per frame */
	uint32_t n_free;
	uint64_t *free_tx;    /* addresses of free TX buffers (a stack) */
	struct oms_xsk_stats st;
} __attribute__((aligned(64)));

struct oms_afxdp {
	struct xsk_port port[OMS_XSK_PORTS];
	unsigned n_ports;
	unsigned tx_port[OMS_XSK_PORTS]; /* traffic class -> port */
	struct oms_core *core;
	struct oms_md_dispatch *md; /* market data for its feeds; NULL: none */
	struct oms_afxdp_config cfg;
	uint32_t xdp_flags;
	struct link_stats link;
	struct oms_afxdp_loop_stats loop;
	/* now_ns: wall-clock epoch, CLOCK_MONOTONIC steps (never jumps back) */
	uint64_t wall_base_ns;
	uint64_t mono_base_ns;
	pthread_t thread;
	int started;
	volatile int stop;
	volatile int running;
	/* single-producer (Python), single-consumer (poll thread) mailbox */
	struct oms_command *mailbox[MAILBOX];
	uint32_t mb_head; /* written by the producer */
	uint32_t mb_tail; /* written by the consumer */
};

static void set_err(char *err, unsigned errlen, const char *fmt, const char *a, int e)
{
	if (err && errlen) {
		char what[160];
		snprintf(what, sizeof(what), fmt, a);
		snprintf(err, errlen, "%s: %s", what, strerror(e));
	}
}

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	/* vDSO: no system call */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_ns(const struct oms_afxdp *dp)
{
	return dp->wall_base_ns + (mono_ns() - dp->mono_base_ns);
}

/* --- TX ------------------------------------------------------------------ */

static void reclaim(struct xsk_port *p)
{
	uint32_t idx;
	uint32_t n = xsk_ring_cons__peek(&p->comp, OMS_XSK_BURST * 4, &idx);

	for (uint32_t i = 0; i < n; i++)
		p->free_tx[p->n_free++] = *xsk_ring_cons__comp_addr(&p->comp, idx + i);
	if (n) {
		xsk_ring_cons__release(&p->comp, n);
		p->st.completions += n;
	}
}

/* Make the descriptors reserved so far visible, and wake the kernel if the
 * ring says it sleeps (in copy mode it always does: it transmits inside
 * sendto, a bounded number per call, hence the loop). */
static void tx_push(struct xsk_port *p)
{
	if (p->tx_reserved) {
		xsk_ring_prod__submit(&p->tx, p->tx_reserved);
		p->tx_reserved = 0;
	}
	for (int t = 0; t < TX_RETRIES && xsk_ring_prod__needs_wakeup(&p->tx); t++) {
		if (__atomic_load_n(p->tx.consumer, __ATOMIC_ACQUIRE) ==
		    __atomic_load_n(p->tx.producer, __ATOMIC_RELAXED))
			break; /* the kernel has taken everything */
		p->st.tx_kicks++;
		if (sendto(p->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
		    errno != EBUSY && errno != ENOBUFS) {
			p->st.tx_kick_errors++;
			break;
		}
	}
}

/* One frame onto the TX ring.  A full ring (or no free buffer) is waited
 * for up to tx_wait_us by the clock, the kernel kicked and completions
 * reclaimed meanwhile: output larger than the ring, such as a mass cancel,
 * goes out instead of being dropped, as in the DPDK worker (port_put).  An
 * interface that frees nothing in a whole wait (link down) is stuck: from
 * then on each frame gets one try, until one goes, so a dead link does not
 * stall the other interface and the input.  What does not go is tx_full. */
static void tx_frame(struct oms_afxdp *dp, struct xsk_port *p, const uint8_t *data, uint32_t len)
{
	uint64_t deadline = 0;
	uint32_t idx;

	if (len > OMS_XSK_FRAME) {
		p->st.tx_oversize++;
		return;
	}
	for (;;) {
		if (!p->n_free)
			reclaim(p);
		if (p->n_free && xsk_ring_prod__reserve(&p->tx, 1, &idx) == 1)
			break;
		if (p->tx_stuck) {
			p->st.tx_full++;
			return;
		}
		uint64_t now = mono_ns();
		if (!deadline) {
			uint32_t us = dp->cfg.tx_wait_us ? dp->cfg.tx_wait_us : TX_WAIT_US;
			deadline = now + (uint64_t)us * 1000;
			p->st.tx_waits++;
		} else if (now >= deadline) {
			p->tx_stuck = 1;
			p->st.tx_stuck++;
			p->st.tx_full++;
			return;
		}
		/* full: let the kernel send what is queued, then look again */
		tx_push(p);
		reclaim(p);
	}
	p->tx_stuck = 0;
	uint64_t addr = p->free_tx[--p->n_free];
	memcpy(xsk_umem__get_data(p->area, addr), data, len);
	struct xdp_desc *d = xsk_ring_prod__tx_desc(&p->tx, idx);
	d->addr = addr;
	d->len = len;
	d->options = 0;
	p->tx_reserved++;
	p->st.tx_frames++;
}

/* Send what the core built, each frame on the interface of its class: the
 * core builds untagged IPv4/UDP, so the source port is at offset 34. */
static void flush_tx(struct oms_afxdp *dp)
{
	uint32_t n = oms_core_tx_count(dp->core);
	const uint8_t *buf = oms_core_tx_buf(dp->core);
	const uint16_t *lens = oms_core_tx_lens(dp->core);

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *f = buf + (size_t)i * OMS_TX_SLOT;
		unsigned cls = ((f[34] << 8) | f[35]) == dp->cfg.strategy_udp ? OMS_XSK_STRATEGY
									       : OMS_XSK_VENUE;
		tx_frame(dp, &dp->port[dp->tx_port[cls]], f, lens[i]);
	}
	oms_core_tx_clear(dp->core);
	for (unsigned p = 0; p < dp->n_ports; p++)
		tx_push(&dp->port[p]);
}

/* --- RX ------------------------------------------------------------------ */

/* The feeds' re-requests and the IGMPv3 host's reports go out of the
 * venue-facing (market-data) socket. */
static void flush_feed_tx(struct oms_afxdp *dp)
{
	struct xsk_port *p = &dp->port[dp->tx_port[OMS_XSK_VENUE]];
	struct oms_igmp *g = oms_md_igmp(dp->md);

	if (g && oms_igmp_tx_count(g)) {
		for (uint32_t k = 0; k < oms_igmp_tx_count(g); k++)
			tx_frame(dp, p, oms_igmp_tx_buf(g) + (size_t)k * OMS_TX_SLOT, oms_igmp_tx_lens(g)[k]);
		tx_push(p);
		oms_igmp_tx_clear(g);
	}

	for (uint32_t i = 0; i < oms_md_feeds(dp->md); i++) {
		struct oms_feed *f = oms_md_feed(dp->md, i);
		for (uint32_t k = 0; k < oms_feed_tx_count(f); k++)
			tx_frame(dp, p, oms_feed_tx_buf(f) + (size_t)k * OMS_TX_SLOT, oms_feed_tx_lens(f)[k]);
		if (oms_feed_tx_count(f))
			tx_push(p);
		oms_feed_tx_clear(f);
	}
}

void oms_afxdp_set_md(struct oms_afxdp *dp, struct oms_md_dispatch *md)
{
	dp->md = md;
}

/* One burst from one interface: ARP and ICMP answered on it, the rest to
 * the core with one now_ns, the core's frames sent, the buffers back on the
 * fill ring.  Returns how many descriptors it took. */
static uint32_t rx_burst(struct oms_afxdp *dp, struct xsk_port *p)
{
	const uint8_t *frames[OMS_XSK_BURST];
	uint16_t lens[OMS_XSK_BURST];
	uint64_t addrs[OMS_XSK_BURST];
	uint8_t out[LINK_MAX_FRAME];
	uint32_t idx, fidx, k = 0;
	uint32_t n = xsk_ring_cons__peek(&p->rx, OMS_XSK_BURST, &idx);

	if (!n) {
		if (xsk_ring_prod__needs_wakeup(&p->fill)) {
			p->st.rx_wakeups++;
			recvfrom(p->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		return 0;
	}
	p->st.rx_frames += n;
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&p->rx, idx + i);
		const uint8_t *data = xsk_umem__get_data(p->area, d->addr);
		uint32_t out_len = 0;
		addrs[i] = d->addr;
		if (link_handle(data, d->len, dp->cfg.mac, dp->cfg.ip, out, &out_len, &dp->link)) {
			if (out_len)
				tx_frame(dp, p, out, out_len);
			continue;
		}
		frames[k] = data;
		lens[k++] = (uint16_t)d->len;
	}
	xsk_ring_cons__release(&p->rx, n);
	if (k) {
		uint64_t now = now_ns(dp);
		if (dp->md) { /* market data to its feeds before the core reads them */
			k = oms_md_split(dp->md, frames, lens, k, now);
			flush_feed_tx(dp);
		}
		oms_journal_before_burst(dp->cfg.journal, dp->core, now);
		oms_core_process_burst(dp->core, frames, lens, k, now);
		oms_journal_after_burst(dp->cfg.journal, dp->core, frames, lens, k, now);
	}
	flush_tx(dp);
	/* the fill ring has room for every RX buffer: this never comes short */
	if (xsk_ring_prod__reserve(&p->fill, n, &fidx) == n) {
		for (uint32_t i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&p->fill, fidx + i) =
				addrs[i] & ~(uint64_t)(OMS_XSK_FRAME - 1);
		xsk_ring_prod__submit(&p->fill, n);
	}
	return n;
}

/* --- the poll loop --------------------------------------------------------- */

static struct oms_command *mailbox_take(struct oms_afxdp *dp)
{
	uint32_t tail = dp->mb_tail;

	if (tail == __atomic_load_n(&dp->mb_head, __ATOMIC_ACQUIRE))
		return NULL;
	struct oms_command *cmd = dp->mailbox[tail % MAILBOX];
	__atomic_store_n(&dp->mb_tail, tail + 1, __ATOMIC_RELEASE);
	return cmd;
}

int oms_afxdp_post(struct oms_afxdp *dp, struct oms_command *cmd)
{
	uint32_t head = dp->mb_head;

	if (head - __atomic_load_n(&dp->mb_tail, __ATOMIC_ACQUIRE) >= MAILBOX)
		return -1;
	cmd->done = 0;
	dp->mailbox[head % MAILBOX] = cmd;
	__atomic_store_n(&dp->mb_head, head + 1, __ATOMIC_RELEASE);
	return 0;
}

static void run_command(struct oms_afxdp *dp, struct oms_command *cmd)
{
	uint64_t now = cmd->now_ns ? cmd->now_ns : now_ns(dp);

	oms_command_apply(dp->core, cmd, now);
	oms_journal_after_command(dp->cfg.journal, dp->core, cmd, now);
	flush_tx(dp);
	dp->loop.commands++;
	__atomic_store_n(&cmd->done, 1, __ATOMIC_RELEASE);
}

static void *poll_main(void *arg)
{
	struct oms_afxdp *dp = arg;
	uint32_t idle = 0;

	while (!dp->stop) {
		int busy = 0;
		for (unsigned p = 0; p < dp->n_ports; p++)
			busy |= rx_burst(dp, &dp->port[p]) != 0;
		struct oms_command *cmd = mailbox_take(dp);
		if (cmd) {
			run_command(dp, cmd);
			busy = 1;
		}
		uint64_t now = now_ns(dp);
		if (dp->md) { /* quiet feeds go stale on time */
			oms_md_timers(dp->md, now);
			flush_feed_tx(dp);
		}
		if (oms_core_timer_due(dp->core, now)) {
			oms_core_process_burst(dp->core, NULL, NULL, 0, now);
			oms_journal_after_burst(dp->cfg.journal, dp->core, NULL, NULL, 0, now);
			flush_tx(dp);
			dp->loop.timer_runs++;
		}
		if (busy) {
			dp->loop.busy_polls++;
			idle = 0;
			continue;
		}
		dp->loop.idle_polls++;
		if (++idle < IDLE_SPINS || dp->cfg.idle_sleep_us == 0) {
			__builtin_ia32_pause();
		} else {
			/* shared CPUs (CI, small machines): give the CPU back */
			dp->loop.sleeps++;
			usleep((useconds_t)dp->cfg.idle_sleep_us);
		}
	}
	/* stopping: what the core still holds goes out, the market data's
	 * groups are left, and the kernel is given the chance to send what is
	 * queued */
	flush_tx(dp);
	if (dp->md) {
		oms_md_leave_all(dp->md, now_ns(dp));
		flush_feed_tx(dp);
	}
	for (unsigned p = 0; p < dp->n_ports; p++)
		reclaim(&dp->port[p]);
	__atomic_store_n(&dp->running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* --- set-up ---------------------------------------------------------------- */

static int port_open(struct oms_afxdp *dp, struct xsk_port *p, const char *ifname, char *err,
		     unsigned errlen)
{
	uint32_t half = dp->cfg.frames / 2;
	struct xsk_umem_config ucfg = {
		.fill_size = half,
		.comp_size = half,
		.frame_size = OMS_XSK_FRAME,
		.frame_headroom = 0,
		.flags = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = half,
		.tx_size = half,
		.libxdp_flags = 0, /* libxdp loads its default program */
		.xdp_flags = dp->xdp_flags,
		.bind_flags = (dp->cfg.mode == OMS_XSK_ZEROCOPY ? XDP_ZEROCOPY : XDP_COPY) |
			      XDP_USE_NEED_WAKEUP,
	};
	uint32_t idx;
	int r;

	p->fd = -1;
	p->ifindex = (int)if_nametoindex(ifname);
	if (!p->ifindex) {
		set_err(err, errlen, "no interface %s", ifname, errno);
		return -1;
	}
	p->area_len = (size_t)dp->cfg.frames * OMS_XSK_FRAME;
	/* the UMEM is the only allocation: made here, once */
	p->area = mmap(NULL, p->area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (p->area == MAP_FAILED) {
		p->area = NULL;
		set_err(err, errlen, "UMEM for %s", ifname, errno);
		return -1;
	}
	p->free_tx = calloc(half, sizeof(*p->free_tx));
	if (!p->free_tx) {
		set_err(err, errlen, "TX stack for %s", ifname, ENOMEM);
		return -1;
	}
	r = xsk_umem__create(&p->umem, p->area, p->area_len, &p->fill, &p->comp, &ucfg);
	if (r) {
		p->umem = NULL;
		set_err(err, errlen, "xsk_umem__create on %s", ifname, -r);
		return -1;
	}
	r = xsk_socket__create(&p->xsk, ifname, dp->cfg.queue, p->umem, &p->rx, &p->tx, &scfg);
	if (r) {
		p->xsk = NULL;
		set_err(err, errlen,
			"xsk_socket__create on %s (is another XDP program attached? a "
			"zero-copy mode the driver lacks?)", ifname, -r);
		return -1;
	}
	p->fd = xsk_socket__fd(p->xsk);
	if (xsk_ring_prod__reserve(&p->fill, half, &idx) != half) {
		set_err(err, errlen, "fill ring of %s", ifname, ENOSPC);
		return -1;
	}
	for (uint32_t i = 0; i < half; i++)
		*xsk_ring_prod__fill_addr(&p->fill, idx + i) = (uint64_t)i * OMS_XSK_FRAME;
	xsk_ring_prod__submit(&p->fill, half);
	for (uint32_t i = 0; i < half; i++)
		p->free_tx[p->n_free++] = (uint64_t)(half + i) * OMS_XSK_FRAME;
	return 0;
}

static void port_close(struct xsk_port *p)
{
	if (p->xsk)
		xsk_socket__delete(p->xsk);
	if (p->umem)
		xsk_umem__delete(p->umem);
	if (p->area)
		munmap(p->area, p->area_len);
	free(p->free_tx);
	memset(p, 0, sizeof(*p));
}

struct oms_afxdp *oms_afxdp_open(const struct oms_afxdp_config *cfg, struct oms_core *core,
				 char *err, unsigned errlen)
{
	struct oms_afxdp *dp;

	if (cfg->frames < 64 || (cfg->frames & (cfg->frames - 1))) {
		set_err(err, errlen, "%s", "UMEM frames must be a power of two, at least 64", EINVAL);
		return NULL;
	}
	if (posix_memalign((void **)&dp, 64, sizeof(*dp)))
		return NULL;
	memset(dp, 0, sizeof(*dp));
	dp->cfg = *cfg;
	dp->core = core;
	dp->xdp_flags = cfg->mode == OMS_XSK_ZEROCOPY ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	int same = strncmp(cfg->ifname[0], cfg->ifname[1], sizeof(cfg->ifname[0])) == 0;
	dp->n_ports = same ? 1 : 2;
	dp->tx_port[OMS_XSK_STRATEGY] = 0;
	dp->tx_port[OMS_XSK_VENUE] = same ? 0 : 1;
	for (unsigned i = 0; i < dp->n_ports; i++) {
		if (port_open(dp, &dp->port[i], cfg->ifname[i], err, errlen)) {
			oms_afxdp_close(dp);
			return NULL;
		}
	}
	return dp;
}

int oms_afxdp_start(struct oms_afxdp *dp, char *err, unsigned errlen)
{
	struct timespec ts;
	uint8_t g[64];
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	dp->mono_base_ns = mono_ns();
	dp->wall_base_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	/* announce ourselves on every interface we receive on */
	uint32_t len = link_gratuitous_arp(dp->cfg.mac, dp->cfg.ip, g);
	for (unsigned p = 0; p < dp->n_ports; p++) {
		tx_frame(dp, &dp->port[p], g, len);
		tx_push(&dp->port[p]);
	}
	dp->stop = 0;
	dp->running = 1;
	r = pthread_create(&dp->thread, NULL, poll_main, dp);
	if (r) {
		dp->running = 0;
		set_err(err, errlen, "%s", "pthread_create", r);
		return -1;
	}
	dp->started = 1;
	pthread_setname_np(dp->thread, "oms-afxdp");
	if (dp->cfg.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(dp->cfg.cpu, &set);
		r = pthread_setaffinity_np(dp->thread, sizeof(set), &set);
		if (r) {
			char cpu[16];
			snprintf(cpu, sizeof(cpu), "%d", dp->cfg.cpu);
			oms_afxdp_stop(dp);
			set_err(err, errlen, "pinning the poll thread to CPU %s (dataplane.afxdp.cpu)",
				cpu, r);
			return -1;
		}
	}
	return 0;
}

void oms_afxdp_stop(struct oms_afxdp *dp)
{
	if (!dp->started)
		return;
	dp->stop = 1;
	pthread_join(dp->thread, NULL);
	dp->started = 0;
}

void oms_afxdp_close(struct oms_afxdp *dp)
{
	if (!dp)
		return;
	oms_afxdp_stop(dp);
	for (unsigned i = 0; i < OMS_XSK_PORTS; i++)
		port_close(&dp->port[i]);
	free(dp);
}

int oms_afxdp_running(const struct oms_afxdp *dp)
{
	return __atomic_load_n(&dp->running, __ATOMIC_ACQUIRE);
}

unsigned oms_afxdp_ports(const struct oms_afxdp *dp)
{
	return dp->n_ports;
}

int oms_afxdp_port_stats(const struct oms_afxdp *dp, unsigned port, struct oms_xsk_stats *out)
{
	struct xdp_statistics ks;
	socklen_t len = sizeof(ks);

	if (port >= dp->n_ports)
		return -1;
	*out = dp->port[port].st;
	if (getsockopt(dp->port[port].fd, SOL_XDP, XDP_STATISTICS, &ks, &len) == 0) {
		out->k_rx_dropped = ks.rx_dropped;
		out->k_rx_invalid_descs = ks.rx_invalid_descs;
		out->k_tx_invalid_descs = ks.tx_invalid_descs;
		out->k_rx_ring_full = ks.rx_ring_full;
		out->k_rx_fill_ring_empty_descs = ks.rx_fill_ring_empty_descs;
		out->k_tx_ring_empty_descs = ks.tx_ring_empty_descs;
	}
	return 0;
}

void oms_afxdp_loop_stats(const struct oms_afxdp *dp, struct oms_afxdp_loop_stats *out)
{
	*out = dp->loop;
}

void oms_afxdp_link_stats(const struct oms_afxdp *dp, struct link_stats *out)
{
	*out = dp->link;
}

uint32_t oms_afxdp_prog_id(const struct oms_afxdp *dp, unsigned port)
{
	uint32_t id = 0;

	if (port >= dp->n_ports || bpf_xdp_query_id(dp->port[port].ifindex, (int)dp->xdp_flags,
						     &id))
		return 0;
	return id;
}

int oms_afxdp_zerocopy(const struct oms_afxdp *dp, unsigned port)
{
	struct xdp_options opts;
	socklen_t len = sizeof(opts);

	if (port >= dp->n_ports ||
	    getsockopt(dp->port[port].fd, SOL_XDP, XDP_OPTIONS, &opts, &len))
		return 0;
	return (opts.flags & XDP_OPTIONS_ZEROCOPY) != 0;
}
