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
};

struct oms_md_dispatch;
struct oms_core;
struct oms_journal;

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
/* Only the feeds' timers (a poll with nothing received). */
void oms_md_timers(struct oms_md_dispatch *d, uint64_t now_ns);
uint32_t oms_md_feeds(const struct oms_md_dispatch *d);
struct oms_feed *oms_md_feed(const struct oms_md_dispatch *d, uint32_t i);
const struct oms_md_stats *oms_md_stats(const struct oms_md_dispatch *d);
/* The software filter's drops, by enum oms_mcast_drop. */
const uint64_t *oms_md_filter_drops(const struct oms_md_dispatch *d);

#endif
