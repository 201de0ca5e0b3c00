/* The native AF_XDP backend (no DPDK): one UMEM and one XDP socket per
 * interface (queue 0 of the strategy-facing and of the venue-facing one),
 * polled run-to-completion by one thread started from C that feeds the core
 * (cdefs/afxdp_io.c).  Python drives it through cffi (dataplane/afxdp.py);
 * like oms_core.h, this header is what cffi binds, read through the
 * preprocessor with OMS_CFFI, so libxdp's own headers stay out of it. */
#ifndef OMS_AFXDP_H
#define OMS_AFXDP_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "command.h"
#include "journal.h"
#include "link.h"
#include "oms_core.h"

enum {
	/* descriptors taken from an RX ring per turn (as the DPDK worker) */
	OMS_XSK_BURST = 32,
	/* UMEM frame: the smallest the kernel accepts, room for any MTU-1500 frame */
	OMS_XSK_FRAME = 2048,
	/* the two interfaces, by traffic class; one interface may carry both */
	OMS_XSK_STRATEGY = 0,
	OMS_XSK_VENUE = 1,
	OMS_XSK_PORTS = 2,
};

enum oms_xsk_mode {
	/* XDP_COPY on generic (SKB-mode) XDP: every driver, veth included */
	OMS_XSK_COPY = 0,
	/* XDP_ZEROCOPY on the driver's own XDP: NICs whose driver supports it */
	OMS_XSK_ZEROCOPY = 1,
};

struct oms_afxdp_config {
	char ifname[OMS_XSK_PORTS][16]; /* IFNAMSIZ; the same twice: one socket */
	uint32_t queue;
	int mode;
	/* UMEM frames per interface, a power of two: half are kept on the fill
	 * ring for RX, half are TX buffers; the rings are sized to match */
	uint32_t frames;
	uint16_t strategy_udp; /* frames from this UDP port go to the strategy side */
	uint8_t mac[6];        /* the appliance's address, for ARP and ICMP */
	uint32_t ip;
	int idle_sleep_us;     /* 0: busy poll; else sleep this long when idle */
	uint32_t tx_wait_us;   /* a full TX ring is waited for this long; 0: 1000 */
	int cpu;               /* pin the poll thread to this CPU; -1: leave it */
	struct oms_journal *journal; /* NULL: none; appended before each flush */
};

/* Per interface, written by the poll thread only (read between bursts by
 * a command, or after it stopped). */
struct oms_xsk_stats {
	uint64_t rx_frames;
	uint64_t tx_frames;
	/* frames that found no TX buffer or descriptor even after waiting
	 * (tx_wait_us), kicking the kernel and reclaiming completions: not
	 * sent, counted here */
	uint64_t tx_full;
	uint64_t tx_waits; /* frames that waited for the TX ring */
	uint64_t tx_stuck; /* waits that freed nothing: the interface counted stuck */
	uint64_t tx_oversize;   /* longer than a UMEM frame: not sent */
	uint64_t tx_kicks;      /* sendto() because the TX ring asked for a wakeup */
	uint64_t tx_kick_errors;
	uint64_t rx_wakeups;    /* recvfrom() because the fill ring asked for one */
	uint64_t completions;   /* TX buffers the kernel gave back */
	/* the kernel's own counters for the socket (XDP_STATISTICS) */
	uint64_t k_rx_dropped;
	uint64_t k_rx_invalid_descs;
	uint64_t k_tx_invalid_descs;
	uint64_t k_rx_ring_full;
	uint64_t k_rx_fill_ring_empty_descs;
	uint64_t k_tx_ring_empty_descs;
};

struct oms_afxdp_loop_stats {
	uint64_t busy_polls;
	uint64_t idle_polls;
	uint64_t sleeps;
	uint64_t timer_runs; /* calls with no frames because a timer was due */
	uint64_t commands;
};

struct oms_afxdp;

/* Open the sockets (libxdp loads and attaches its default program, which
 * redirects the queue to the socket) and fill the fill rings; NULL and the
 * reason in err on failure.  The core is driven by this backend alone from
 * oms_afxdp_start() until oms_afxdp_stop(). */
struct oms_afxdp *oms_afxdp_open(const struct oms_afxdp_config *cfg, struct oms_core *core,
				 char *err, unsigned errlen);
/* Market data: the poll thread hands the dispatcher's frames to its feeds
 * before the core's burst and runs their timers (docs/market-data.md
 * "Wiring").  Before oms_afxdp_start(); NULL: none. */
void oms_afxdp_set_md(struct oms_afxdp *dp, struct oms_md_dispatch *md);
/* Announce the address (gratuitous ARP) and start the poll thread. */
int oms_afxdp_start(struct oms_afxdp *dp, char *err, unsigned errlen);
/* Stop at a burst boundary, flush what the core still holds, join. */
void oms_afxdp_stop(struct oms_afxdp *dp);
/* Delete the sockets and UMEMs; the XDP program goes with the last socket. */
void oms_afxdp_close(struct oms_afxdp *dp);
int oms_afxdp_running(const struct oms_afxdp *dp);
/* Hand a command to the poll thread (single producer); -1 when the mailbox
 * is full.  The poll thread sets cmd->done once it ran. */
int oms_afxdp_post(struct oms_afxdp *dp, struct oms_command *cmd);
/* 1 or 2 sockets; port i carries traffic class i (both when there is one). */
unsigned oms_afxdp_ports(const struct oms_afxdp *dp);
/* The socket's counters, with the kernel's read now. */
int oms_afxdp_port_stats(const struct oms_afxdp *dp, unsigned port, struct oms_xsk_stats *out);
void oms_afxdp_loop_stats(const struct oms_afxdp *dp, struct oms_afxdp_loop_stats *out);
void oms_afxdp_link_stats(const struct oms_afxdp *dp, struct link_stats *out);
/* The id of the XDP program on the port's interface (0: none) and whether
 * the socket is in zero-copy mode. */
uint32_t oms_afxdp_prog_id(const struct oms_afxdp *dp, unsigned port);
int oms_afxdp_zerocopy(const struct oms_afxdp *dp, unsigned port);

#endif
