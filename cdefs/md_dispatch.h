/* Market data on the worker's ports: which received frames are a feed's
 * (its group's multicast, unicast retransmissions to our market-data
 * port), handed to that feed before the core sees the rest of the burst
 * (docs/semantics.md "Market data in the core", docs/market-data.md
 * "Wiring").  Multicast to a group, port or source not subscribed is
 * dropped by the software multicast filter and counted by reason.
 *
 * The worker that owns the core is every feed's one writer here (the
 * 2-core layout: feeds polled between bursts).  Included from oms_core.h,
 * so cffi binds it too. */
#ifndef OMS_MD_DISPATCH_H
#define OMS_MD_DISPATCH_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "feed.h"

enum { OMS_MD_MAX_FEEDS = 16 };

struct oms_md_stats {
	uint64_t to_feed;  /* frames handed to a feed */
	uint64_t filtered; /* multicast dropped by the software filter */
	uint64_t to_core;  /* frames left for the core */
	uint64_t igmp_in;  /* IGMP frames handed to the IGMPv3 host */
	uint64_t changes;  /* subscription changes applied (live reload) */
	uint64_t changes_failed;
};

struct oms_md_dispatch;
struct oms_core;
struct oms_journal;
struct oms_igmp;

/* A change of the subscription set, built by the control plane and applied
 * by the dispatcher's one writer between two bursts (oms_md_post). */
enum oms_md_change_op {
	OMS_MD_ADD = 1,       /* take the feed's group (join it) */
	OMS_MD_REMOVE = 2,    /* leave its group; its books go stale */
	OMS_MD_SUBSCRIBE = 3, /* a book for `symbol` at `symbol_index` */
};

struct oms_md_change {
	int op;
	struct oms_feed *feed;
	uint32_t group_ip;
	uint16_t group_port;
	uint16_t venue;        /* ADD: set_feed on `core` (when non-NULL) */
	uint32_t source_ip;
	uint32_t retrans_ip;
	struct oms_core *core; /* the core on the dispatcher's thread, or NULL */
	char symbol[8];        /* SUBSCRIBE, space padded */
	uint32_t symbol_index;
	int result;            /* 0, or -1: refused (table full, not there) */
};

/* `ip`, `port`: ours, where retransmissions come back.  NULL: no memory. */
struct oms_md_dispatch *oms_md_create(uint32_t ip, uint16_t port);
void oms_md_destroy(struct oms_md_dispatch *d);
/* A feed and what it takes: multicast to group_ip:group_port (from
 * source_ip only, when non-zero) and unicast from retrans_ip (0: none) to
 * our port.  -1: full, or that group and port are taken. */
int oms_md_add_feed(struct oms_md_dispatch *d, struct oms_feed *f, uint32_t group_ip,
		    uint16_t group_port, uint32_t source_ip, uint32_t retrans_ip);
/* Run every feed's timers at now_ns, hand the market data among the `n`
 * frames to their feeds (in order), and move the rest to the front of
 * frames/lens, keeping their order; returns how many are left for the
 * core. */
/* The core whose FEED_TO_BOOK stage histogram times each market-data
 * packet, from its hand-over to the feed to its books and tops of book
 * updated (TSC, only while that core's timing is on). */
void oms_md_set_stage_core(struct oms_md_dispatch *d, struct oms_core *c);
/* Record the frames handed to the feeds in this journal (a MARKET record
 * per oms_md_split that hands any), so that recovery and a standby rebuild
 * the books the core read (docs/durability.md).  NULL: none. */
void oms_md_set_journal(struct oms_md_dispatch *d, struct oms_journal *j);
uint32_t oms_md_split(struct oms_md_dispatch *d, const uint8_t **frames, uint16_t *lens,
		      uint32_t n, uint64_t now_ns);
/* IGMPv3 for the market-data port (live only: replays send no reports).
 * Set before the poll loop starts; the dispatcher joins every
 * subscription's group at its first call, hands the port's IGMP frames to
 * `g` and runs its timers; the loop sends `g`'s frames out of the
 * market-data port.  NULL: none. */
void oms_md_set_igmp(struct oms_md_dispatch *d, struct oms_igmp *g);
struct oms_igmp *oms_md_igmp(const struct oms_md_dispatch *d);
/* Stopping: leave every group (the loop sends the reports). */
void oms_md_leave_all(struct oms_md_dispatch *d, uint64_t now_ns);
/* The control plane hands `n` changes to the dispatcher's writer, which
 * applies them at its next call (between two bursts) and sets each
 * change's result; the caller keeps them alive until oms_md_applied()
 * reaches the number returned.  0: a previous post is still pending. */
uint64_t oms_md_post(struct oms_md_dispatch *d, struct oms_md_change *changes, uint32_t n);
uint64_t oms_md_applied(const struct oms_md_dispatch *d);
/* Only the feeds' timers (a poll with nothing received). */
void oms_md_timers(struct oms_md_dispatch *d, uint64_t now_ns);
uint32_t oms_md_feeds(const struct oms_md_dispatch *d);
struct oms_feed *oms_md_feed(const struct oms_md_dispatch *d, uint32_t i);
const struct oms_md_stats *oms_md_stats(const struct oms_md_dispatch *d);
/* The software filter's drops, by enum oms_mcast_drop. */
const uint64_t *oms_md_filter_drops(const struct oms_md_dispatch *d);

#endif
