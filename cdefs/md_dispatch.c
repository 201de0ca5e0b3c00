/* Market-data frames to their feeds, the rest to the core (md_dispatch.h). */
#include <stdlib.h>

#include "igmp.h"
#include "journal.h"
#include "md_dispatch.h"
#include "stages_record.h"
#include "net.h"

struct md_feed {
	struct oms_feed *feed;
	uint32_t group_ip;
	uint32_t source_ip;
	uint32_t retrans_ip;
	uint16_t group_port;
};

struct oms_md_dispatch {
	uint32_t ip;
	uint16_t port;
	uint32_t n;
	struct md_feed feeds[OMS_MD_MAX_FEEDS];
	struct oms_mcast_filter *filter;
	struct oms_md_stats stats;
	/* the core whose FEED_TO_BOOK stage times each packet the feeds take
	 * (the one on this dispatcher's thread); NULL: none */
	struct oms_core *stage_core;
	struct oms_journal *journal; /* MARKET records; NULL: none */
	/* IGMPv3 host of the market-data port (live); NULL: none */
	struct oms_igmp *igmp;
	int joined; /* the subscriptions' groups are joined */
	/* subscription changes: the control plane writes pending and bumps
	 * posted (release); the writer applies them and sets applied */
	struct oms_md_change *pending;
	uint32_t pending_n;
	uint64_t posted;
	uint64_t applied;
};

void oms_md_set_journal(struct oms_md_dispatch *d, struct oms_journal *j)
{
	d->journal = j;
}

void oms_md_set_stage_core(struct oms_md_dispatch *d, struct oms_core *c)
{
	d->stage_core = c;
}

struct oms_md_dispatch *oms_md_create(uint32_t ip, uint16_t port)
{
	struct oms_md_dispatch *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->ip = ip;
	d->port = port;
	d->filter = oms_mcast_filter_create(OMS_MD_MAX_FEEDS);
	if (!d->filter) {
		free(d);
		return NULL;
	}
	return d;
}

void oms_md_destroy(struct oms_md_dispatch *d)
{
	if (!d)
		return;
	oms_mcast_filter_destroy(d->filter);
	free(d);
}

int oms_md_add_feed(struct oms_md_dispatch *d, struct oms_feed *f, uint32_t group_ip,
		    uint16_t group_port, uint32_t source_ip, uint32_t retrans_ip)
{
	if (d->n >= OMS_MD_MAX_FEEDS || !f)
		return -1;
	for (uint32_t i = 0; i < d->n; i++)
		if (d->feeds[i].group_ip == group_ip && d->feeds[i].group_port == group_port)
			return -1;
	if (oms_mcast_filter_add(d->filter, group_ip, group_port, source_ip))
		return -1;
	d->feeds[d->n++] = (struct md_feed){f, group_ip, source_ip, retrans_ip, group_port};
	return 0;
}

void oms_md_set_igmp(struct oms_md_dispatch *d, struct oms_igmp *g)
{
	d->igmp = g;
	d->joined = 0;
}

struct oms_igmp *oms_md_igmp(const struct oms_md_dispatch *d)
{
	return d->igmp;
}

static void join_all(struct oms_md_dispatch *d, uint64_t now_ns)
{
	for (uint32_t i = 0; i < d->n; i++)
		oms_igmp_join(d->igmp, d->feeds[i].group_ip, d->feeds[i].source_ip, now_ns);
	d->joined = 1;
}

void oms_md_leave_all(struct oms_md_dispatch *d, uint64_t now_ns)
{
	if (!d->igmp || !d->joined)
		return;
	for (uint32_t i = 0; i < d->n; i++)
		oms_igmp_leave(d->igmp, d->feeds[i].group_ip, d->feeds[i].source_ip, now_ns);
	d->joined = 0;
	oms_igmp_poll(d->igmp, now_ns);
}

static int remove_feed(struct oms_md_dispatch *d, const struct oms_md_change *c, uint64_t now_ns)
{
	uint32_t i = 0;

	while (i < d->n && !(d->feeds[i].feed == c->feed && d->feeds[i].group_ip == c->group_ip &&
			     d->feeds[i].group_port == c->group_port))
		i++;
	if (i == d->n)
		return -1;
	struct md_feed gone = d->feeds[i];
	for (; i + 1 < d->n; i++)
		d->feeds[i] = d->feeds[i + 1];
	d->n--;
	oms_mcast_filter_remove(d->filter, gone.group_ip, gone.group_port, gone.source_ip);
	if (d->igmp && d->joined)
		oms_igmp_leave(d->igmp, gone.group_ip, gone.source_ip, now_ns);
	oms_feed_set_unsubscribed(gone.feed, 1);
	return 0;
}

static int apply_change(struct oms_md_dispatch *d, const struct oms_md_change *c, uint64_t now_ns)
{
	switch (c->op) {
	case OMS_MD_ADD:
		if (oms_md_add_feed(d, c->feed, c->group_ip, c->group_port, c->source_ip,
				    c->retrans_ip))
			return -1;
		if (d->igmp && d->joined)
			oms_igmp_join(d->igmp, c->group_ip, c->source_ip, now_ns);
		oms_feed_set_unsubscribed(c->feed, 0);
		if (c->core)
			oms_core_set_feed(c->core, c->venue, c->feed);
		return 0;
	case OMS_MD_REMOVE:
		return remove_feed(d, c, now_ns);
	case OMS_MD_SUBSCRIBE:
		return oms_feed_subscribe(c->feed, c->symbol, c->symbol_index);
	default:
		return -1;
	}
}

uint64_t oms_md_post(struct oms_md_dispatch *d, struct oms_md_change *changes, uint32_t n)
{
	uint64_t posted = d->posted; /* the control plane's alone */

	if (__atomic_load_n(&d->applied, __ATOMIC_ACQUIRE) != posted)
		return 0;
	d->pending = changes;
	d->pending_n = n;
	__atomic_store_n(&d->posted, posted + 1, __ATOMIC_RELEASE);
	return posted + 1;
}

uint64_t oms_md_applied(const struct oms_md_dispatch *d)
{
	return __atomic_load_n(&d->applied, __ATOMIC_ACQUIRE);
}

/* Between bursts, on the writer: changes posted, the first joins. */
static void take_changes(struct oms_md_dispatch *d, uint64_t now_ns)
{
	uint64_t posted = __atomic_load_n(&d->posted, __ATOMIC_ACQUIRE);

	if (d->igmp && !d->joined)
		join_all(d, now_ns);
	if (posted == d->applied)
		return;
	for (uint32_t i = 0; i < d->pending_n; i++) {
		struct oms_md_change *c = &d->pending[i];
		c->result = apply_change(d, c, now_ns);
		if (c->result)
			d->stats.changes_failed++;
		else
			d->stats.changes++;
	}
	__atomic_store_n(&d->applied, posted, __ATOMIC_RELEASE);
}

/* The feed a frame belongs to; NULL for the core.  *drop is set when the
 * software filter dropped it, to 2 when it is IGMP for the host. */
static struct oms_feed *classify(struct oms_md_dispatch *d, const uint8_t *f, uint32_t len,
				 int *drop)
{
	uint32_t off = 14;

	*drop = 0;
	if (len < off + 20)
		return NULL;
	uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
	if (et == 0x8100) {
		et = (uint16_t)(f[16] << 8 | f[17]);
		off += 4;
	}
	const uint8_t *ip = f + off;
	if (et != 0x0800 || len < off + 20)
		return NULL;
	if (ip[9] == 2 && d->igmp) { /* queries, others' reports */
		*drop = 2;
		return NULL;
	}
	if (ip[9] != 17)
		return NULL;
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if (ihl < 20 || len < off + ihl + 8)
		return NULL;
	uint32_t src = rd_be32(ip + 12), dst = rd_be32(ip + 16);
	uint16_t dport = rd_be16(ip + ihl + 2);
	if ((dst >> 28) == 0xE) {
		if (!oms_mcast_filter_check(d->filter, f, len)) {
			*drop = 1;
			return NULL;
		}
		for (uint32_t i = 0; i < d->n; i++)
			if (d->feeds[i].group_ip == dst && d->feeds[i].group_port == dport)
				return d->feeds[i].feed;
		return NULL;
	}
	if (dst != d->ip || dport != d->port)
		return NULL;
	for (uint32_t i = 0; i < d->n; i++)
		if (d->feeds[i].retrans_ip && d->feeds[i].retrans_ip == src)
			return d->feeds[i].feed;
	return NULL;
}

void oms_md_timers(struct oms_md_dispatch *d, uint64_t now_ns)
{
	take_changes(d, now_ns);
	if (d->igmp)
		oms_igmp_poll(d->igmp, now_ns);
	for (uint32_t i = 0; i < d->n; i++)
		oms_feed_process(d->feeds[i].feed, NULL, NULL, 0, now_ns);
}

uint32_t oms_md_split(struct oms_md_dispatch *d, const uint8_t **frames, uint16_t *lens,
		      uint32_t n, uint64_t now_ns)
{
	uint32_t keep = 0, nj = 0;
	/* what the feeds take, for the journal: one record per call, or per
	 * 64 frames */
	const uint8_t *jf[64];
	uint16_t jl[64];

	oms_md_timers(d, now_ns);
	for (uint32_t i = 0; i < n; i++) {
		int drop;
		struct oms_feed *f = classify(d, frames[i], lens[i], &drop);
		if (f && d->journal) {
			if (nj == 64) {
				oms_journal_market(d->journal, jf, jl, nj, now_ns);
				nj = 0;
			}
			jf[nj] = frames[i];
			jl[nj++] = lens[i];
		}
		if (f) {
			struct oms_core *c = d->stage_core;
			uint64_t t0 = c && c->timing ? stage_cycles() : 0;
			oms_feed_process(f, &frames[i], &lens[i], 1, now_ns);
			if (t0)
				lat_record(&c->obs.stage[OMS_STAGE_FEED_TO_BOOK], stage_cycles() - t0);
			d->stats.to_feed++;
		} else if (drop == 2) {
			oms_igmp_rx(d->igmp, frames[i], lens[i], now_ns);
			d->stats.igmp_in++;
		} else if (drop) {
			d->stats.filtered++;
		} else {
			frames[keep] = frames[i];
			lens[keep++] = lens[i];
		}
	}
	if (nj)
		oms_journal_market(d->journal, jf, jl, nj, now_ns);
	d->stats.to_core += keep;
	return keep;
}

uint32_t oms_md_feeds(const struct oms_md_dispatch *d)
{
	return d->n;
}

struct oms_feed *oms_md_feed(const struct oms_md_dispatch *d, uint32_t i)
{
	return i < d->n ? d->feeds[i].feed : NULL;
}

const struct oms_md_stats *oms_md_stats(const struct oms_md_dispatch *d)
{
	return &d->stats;
}

const uint64_t *oms_md_filter_drops(const struct oms_md_dispatch *d)
{
	return oms_mcast_filter_drops(d->filter);
}
