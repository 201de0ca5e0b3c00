/* IGMPv3 host side and the software multicast filter (igmp.h). */
#include <stdlib.h>
#include <string.h>

#include "igmp.h"
#include "net.h"
#include "orders.h" /* alloc_lines */

enum {
	DEFAULT_ROBUSTNESS = 2,
	DEFAULT_TX_FRAMES = 16,
	IPV4_RA_HLEN = IPV4_HLEN + 4, /* with the Router Alert option */
	IGMP_REPORT_HLEN = 8,
	IGMP_RECORD_HLEN = 8,
	IGMP_V3_QUERY_MIN = 12,
	IGMP_QUERY_MIN = 8,
};
#define DEFAULT_UNSOLICITED_NS 1000000000ull /* RFC 3376 8.11: 1 s */
#define NEVER UINT64_MAX

struct igmp_group {
	uint32_t group; /* 0: free slot */
	uint32_t asm_refs;
	uint32_t n_src;
	uint32_t src[OMS_IGMP_MAX_SOURCES];
	uint32_t src_refs[OMS_IGMP_MAX_SOURCES];
	/* the state change still to report */
	uint8_t pend_left;    /* reports still to send */
	uint8_t pend_mode;    /* CHANGE_TO_*, or 0: the allow/block lists */
	uint8_t n_allow, n_block;
	uint32_t allow[OMS_IGMP_MAX_SOURCES];
	uint32_t block[OMS_IGMP_MAX_SOURCES];
	uint64_t pend_due;
	uint64_t resp_due; /* answer to a group-specific query */
};

struct oms_igmp {
	struct oms_igmp_config cfg;
	struct igmp_group *groups;
	uint64_t rng;
	uint64_t general_due;
	uint64_t counters[OMS_IGMP_COUNTER_MAX];
	uint8_t *tx_buf;
	uint16_t *tx_lens;
	uint32_t tx_count;
};

static const char *const counter_names[] = {
#define OMS_IGMP_NAME(n) #n,
	OMS_IGMP_COUNTER_LIST(OMS_IGMP_NAME)
};

const char *oms_igmp_counter_name(int i)
{
	return i >= 0 && i < OMS_IGMP_COUNTER_MAX ? counter_names[i] : "?";
}

void oms_mcast_mac(uint32_t group, uint8_t mac[6])
{
	mac[0] = 0x01;
	mac[1] = 0x00;
	mac[2] = 0x5e;
	mac[3] = (uint8_t)((group >> 16) & 0x7f);
	mac[4] = (uint8_t)(group >> 8);
	mac[5] = (uint8_t)group;
}

/* splitmix64: small, seedable, good enough for spreading answers */
static uint64_t next_rand(struct oms_igmp *g)
{
	uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

struct oms_igmp *oms_igmp_create(const struct oms_igmp_config *cfg)
{
	if (!cfg->max_groups)
		return NULL;
	struct oms_igmp *g = alloc_lines(sizeof(*g));
	if (!g)
		return NULL;
	memset(g, 0, sizeof(*g));
	g->cfg = *cfg;
	if (!g->cfg.robustness)
		g->cfg.robustness = DEFAULT_ROBUSTNESS;
	if (!g->cfg.unsolicited_ns)
		g->cfg.unsolicited_ns = DEFAULT_UNSOLICITED_NS;
	if (!g->cfg.tx_capacity)
		g->cfg.tx_capacity = DEFAULT_TX_FRAMES;
	g->rng = cfg->seed;
	g->general_due = NEVER;
	g->groups = alloc_lines((size_t)cfg->max_groups * sizeof(struct igmp_group));
	g->tx_buf = alloc_lines((size_t)g->cfg.tx_capacity * OMS_TX_SLOT);
	g->tx_lens = alloc_lines((size_t)g->cfg.tx_capacity * sizeof(uint16_t));
	if (!g->groups || !g->tx_buf || !g->tx_lens) {
		oms_igmp_destroy(g);
		return NULL;
	}
	memset(g->groups, 0, (size_t)cfg->max_groups * sizeof(struct igmp_group));
	return g;
}

void oms_igmp_destroy(struct oms_igmp *g)
{
	if (!g)
		return;
	free(g->groups);
	free(g->tx_buf);
	free(g->tx_lens);
	free(g);
}

static struct igmp_group *find_group(struct oms_igmp *g, uint32_t group, int create)
{
	struct igmp_group *free_slot = NULL;

	for (uint32_t i = 0; i < g->cfg.max_groups; i++) {
		if (g->groups[i].group == group)
			return &g->groups[i];
		if (!g->groups[i].group && !free_slot)
			free_slot = &g->groups[i];
	}
	if (!create)
		return NULL;
	if (!free_slot) {
		g->counters[OMS_IGMP_GROUPS_FULL]++;
		return NULL;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->group = group;
	free_slot->resp_due = NEVER;
	return free_slot;
}

static int list_find(const uint32_t *list, uint32_t n, uint32_t v)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == v)
			return (int)i;
	return -1;
}

static void list_del(uint32_t *list, uint8_t *n, uint32_t v)
{
	int i = list_find(list, *n, v);
	if (i >= 0)
		list[i] = list[--*n];
}

static void list_add(uint32_t *list, uint8_t *n, uint32_t v)
{
	if (list_find(list, *n, v) < 0 && *n < OMS_IGMP_MAX_SOURCES)
		list[(*n)++] = v;
}

static void state_changed(struct oms_igmp *g, struct igmp_group *gr, uint64_t now)
{
	gr->pend_left = g->cfg.robustness;
	gr->pend_due = now;
	g->counters[OMS_IGMP_STATE_CHANGES]++;
}

/* RFC 3376 5.1: INCLUDE -> EXCLUDE is TO_EX, EXCLUDE -> INCLUDE is TO_IN,
 * a source added to or removed from an INCLUDE list ALLOW or BLOCK. */
int oms_igmp_join(struct oms_igmp *g, uint32_t group, uint32_t source, uint64_t now_ns)
{
	struct igmp_group *gr = find_group(g, group, 1);

	if (!gr)
		return -1;
	if (!source) {
		if (gr->asm_refs++ == 0) {
			gr->pend_mode = IGMP_CHANGE_TO_EXCLUDE;
			gr->n_allow = gr->n_block = 0;
			state_changed(g, gr, now_ns);
		}
	} else {
		int i = list_find(gr->src, gr->n_src, source);
		if (i >= 0) {
			gr->src_refs[i]++;
		} else {
			if (gr->n_src >= OMS_IGMP_MAX_SOURCES) {
				g->counters[OMS_IGMP_SOURCES_FULL]++;
				return -1;
			}
			gr->src[gr->n_src] = source;
			gr->src_refs[gr->n_src++] = 1;
			/* in EXCLUDE {} every source already flows */
			if (!gr->asm_refs) {
				if (gr->pend_mode != IGMP_CHANGE_TO_INCLUDE) {
					gr->pend_mode = 0;
					list_add(gr->allow, &gr->n_allow, source);
					list_del(gr->block, &gr->n_block, source);
				}
				state_changed(g, gr, now_ns);
			}
		}
	}
	oms_igmp_poll(g, now_ns);
	return 0;
}

int oms_igmp_leave(struct oms_igmp *g, uint32_t group, uint32_t source, uint64_t now_ns)
{
	struct igmp_group *gr = find_group(g, group, 0);
	int i = gr && source ? list_find(gr->src, gr->n_src, source) : -1;

	if (!gr || (!source && !gr->asm_refs) || (source && i < 0)) {
		g->counters[OMS_IGMP_NOT_MEMBER]++;
		return -1;
	}
	if (!source) {
		if (--gr->asm_refs == 0) {
			gr->pend_mode = IGMP_CHANGE_TO_INCLUDE; /* with the sources left */
			gr->n_allow = gr->n_block = 0;
			state_changed(g, gr, now_ns);
		}
	} else if (--gr->src_refs[i] == 0) {
		gr->src[i] = gr->src[gr->n_src - 1];
		gr->src_refs[i] = gr->src_refs[--gr->n_src];
		if (!gr->asm_refs) {
			if (gr->pend_mode != IGMP_CHANGE_TO_INCLUDE) {
				gr->pend_mode = 0;
				list_add(gr->block, &gr->n_block, source);
				list_del(gr->allow, &gr->n_allow, source);
			}
			state_changed(g, gr, now_ns);
		}
	}
	oms_igmp_poll(g, now_ns);
	return 0;
}

/* ---- reports ---- */

struct report {
	uint8_t *frame;
	uint8_t *igmp;
	uint32_t len; /* of the IGMP message so far */
	uint16_t n_records;
};

static int report_begin(struct oms_igmp *g, struct report *r)
{
	if (g->tx_count >= g->cfg.tx_capacity) {
		g->counters[OMS_IGMP_TX_FULL]++;
		return -1;
	}
	r->frame = g->tx_buf + (size_t)g->tx_count * OMS_TX_SLOT;
	r->igmp = r->frame + ETH_HLEN + IPV4_RA_HLEN;
	r->len = IGMP_REPORT_HLEN;
	r->n_records = 0;
	return 0;
}

static void report_end(struct oms_igmp *g, struct report *r)
{
	uint8_t *ip = r->frame + ETH_HLEN;
	uint8_t dst_mac[6];

	oms_mcast_mac(IGMP_ALL_REPORTS, dst_mac);
	memcpy(r->frame, dst_mac, 6);
	memcpy(r->frame + 6, g->cfg.mac, 6);
	wr_be16(r->frame + 12, 0x0800);

	ip[0] = 0x46;    /* IHL 6: the Router Alert option */
	ip[1] = 0xc0;    /* precedence "internetwork control", as hosts send */
	wr_be16(ip + 2, (uint16_t)(IPV4_RA_HLEN + r->len));
	wr_be16(ip + 4, 0);
	wr_be16(ip + 6, 0x4000);
	ip[8] = 1;       /* TTL 1: link-local */
	ip[9] = 2;       /* IGMP */
	wr_be16(ip + 10, 0);
	wr_be32(ip + 12, g->cfg.ip);
	wr_be32(ip + 16, IGMP_ALL_REPORTS);
	ip[20] = 0x94;   /* Router Alert (RFC 2113): copied, class 0, 20 */
	ip[21] = 4;
	ip[22] = 0;
	ip[23] = 0;
	wr_be16(ip + 10, net_ipv4_checksum(ip, IPV4_RA_HLEN));

	r->igmp[0] = IGMP_TYPE_V3_REPORT;
	r->igmp[1] = 0;
	wr_be16(r->igmp + 2, 0);
	wr_be16(r->igmp + 4, 0);
	wr_be16(r->igmp + 6, r->n_records);
	wr_be16(r->igmp + 2, net_ipv4_checksum(r->igmp, r->len));
	g->tx_lens[g->tx_count++] = (uint16_t)(ETH_HLEN + IPV4_RA_HLEN + r->len);
	g->counters[OMS_IGMP_REPORTS_SENT]++;
}

/* Appends a group record, opening a new frame when this one is full;
 * -1 when the transmit area is. */
static int report_record(struct oms_igmp *g, struct report *r, uint8_t type, uint32_t group,
			 const uint32_t *src, uint32_t n_src)
{
	uint32_t rec_len = IGMP_RECORD_HLEN + 4 * n_src;

	if (ETH_HLEN + IPV4_RA_HLEN + r->len + rec_len > OMS_TX_SLOT) {
		report_end(g, r);
		if (report_begin(g, r))
			return -1;
	}
	uint8_t *p = r->igmp + r->len;
	p[0] = type;
	p[1] = 0; /* no auxiliary data */
	wr_be16(p + 2, (uint16_t)n_src);
	wr_be32(p + 4, group);
	for (uint32_t i = 0; i < n_src; i++)
		wr_be32(p + 8 + 4 * i, src[i]);
	r->len += rec_len;
	r->n_records++;
	return 0;
}

static int current_state(struct oms_igmp *g, struct report *r, const struct igmp_group *gr)
{
	if (gr->asm_refs)
		return report_record(g, r, IGMP_MODE_IS_EXCLUDE, gr->group, NULL, 0);
	return report_record(g, r, IGMP_MODE_IS_INCLUDE, gr->group, gr->src, gr->n_src);
}

static int is_member(const struct igmp_group *gr)
{
	return gr->group && (gr->asm_refs || gr->n_src);
}

static void send_state_change(struct oms_igmp *g, struct igmp_group *gr, uint64_t now)
{
	struct report r;

	if (report_begin(g, &r))
		return; /* stays due: the next poll sends it */
	if (gr->pend_mode == IGMP_CHANGE_TO_EXCLUDE)
		report_record(g, &r, IGMP_CHANGE_TO_EXCLUDE, gr->group, NULL, 0);
	else if (gr->pend_mode == IGMP_CHANGE_TO_INCLUDE)
		report_record(g, &r, IGMP_CHANGE_TO_INCLUDE, gr->group, gr->src, gr->n_src);
	if (!gr->pend_mode && gr->n_allow)
		report_record(g, &r, IGMP_ALLOW_NEW_SOURCES, gr->group, gr->allow, gr->n_allow);
	if (!gr->pend_mode && gr->n_block)
		report_record(g, &r, IGMP_BLOCK_OLD_SOURCES, gr->group, gr->block, gr->n_block);
	if (r.n_records) /* a change undone before it was sent: nothing to say */
		report_end(g, &r);
	if (--gr->pend_left) {
		gr->pend_due = now + g->cfg.unsolicited_ns;
		return;
	}
	gr->pend_mode = 0;
	gr->n_allow = gr->n_block = 0;
	if (!is_member(gr))
		gr->group = 0;
}

uint32_t oms_igmp_poll(struct oms_igmp *g, uint64_t now_ns)
{
	for (uint32_t i = 0; i < g->cfg.max_groups; i++) {
		struct igmp_group *gr = &g->groups[i];
		if (!gr->group)
			continue;
		if (gr->pend_left && gr->pend_due <= now_ns)
			send_state_change(g, gr, now_ns);
		if (gr->group && gr->resp_due <= now_ns) {
			struct report r;
			if (report_begin(g, &r))
				continue;
			gr->resp_due = NEVER;
			if (is_member(gr)) {
				current_state(g, &r, gr);
				report_end(g, &r);
			}
		}
	}
	if (g->general_due <= now_ns) {
		struct report r;
		if (report_begin(g, &r))
			return g->tx_count;
		g->general_due = NEVER;
		for (uint32_t i = 0; i < g->cfg.max_groups; i++)
			if (is_member(&g->groups[i]) && current_state(g, &r, &g->groups[i]))
				return g->tx_count;
		if (r.n_records)
			report_end(g, &r);
	}
	return g->tx_count;
}

uint64_t oms_igmp_next_deadline(const struct oms_igmp *g)
{
	uint64_t t = g->general_due;

	for (uint32_t i = 0; i < g->cfg.max_groups; i++) {
		const struct igmp_group *gr = &g->groups[i];
		if (!gr->group)
			continue;
		if (gr->pend_left && gr->pend_due < t)
			t = gr->pend_due;
		if (gr->resp_due < t)
			t = gr->resp_due;
	}
	return t;
}

/* ---- queries ---- */

/* Max Resp Code (RFC 3376 4.1.1) in tenths of a second. */
static uint32_t max_resp_tenths(uint8_t code, int v3)
{
	if (!v3 || code < 128)
		return code;
	return ((uint32_t)(code & 0x0f) | 0x10) << (((code >> 4) & 0x07) + 3);
}

void oms_igmp_rx(struct oms_igmp *g, const uint8_t *frame, uint32_t len, uint64_t now_ns)
{
	uint32_t off = ETH_HLEN;

	if (len < ETH_HLEN + IPV4_HLEN) {
		g->counters[OMS_IGMP_TRUNCATED]++;
		return;
	}
	uint16_t et = rd_be16(frame + 12);
	if (et == 0x8100) {
		et = rd_be16(frame + 16);
		off += VLAN_HLEN;
	}
	const uint8_t *ip = frame + off;
	if (et != 0x0800 || len < off + IPV4_HLEN || (ip[0] >> 4) != 4 || ip[9] != 2) {
		g->counters[OMS_IGMP_NOT_IGMP]++;
		return;
	}
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4, total = rd_be16(ip + 2);
	if (ihl < IPV4_HLEN || total < ihl + IGMP_QUERY_MIN || off + total > len) {
		g->counters[OMS_IGMP_TRUNCATED]++;
		return;
	}
	const uint8_t *m = ip + ihl;
	uint32_t mlen = total - ihl;
	if (net_ipv4_checksum(ip, ihl) || net_ipv4_checksum(m, mlen)) {
		g->counters[OMS_IGMP_BAD_CHECKSUM]++;
		return;
	}
	if (m[0] != IGMP_TYPE_QUERY) {
		g->counters[OMS_IGMP_NOT_QUERY]++;
		return;
	}
	uint64_t max_ns = (uint64_t)max_resp_tenths(m[1], mlen >= IGMP_V3_QUERY_MIN) * 100000000ull;
	uint64_t due = now_ns + (max_ns ? next_rand(g) % max_ns : 0);
	uint32_t group = rd_be32(m + 4);
	if (!group) {
		g->counters[OMS_IGMP_GENERAL_QUERIES]++;
		if (due < g->general_due)
			g->general_due = due;
		return;
	}
	struct igmp_group *gr = find_group(g, group, 0);
	if (!gr || !is_member(gr)) {
		g->counters[OMS_IGMP_QUERIES_OTHER_GROUP]++;
		return;
	}
	g->counters[OMS_IGMP_GROUP_QUERIES]++;
	if (due < gr->resp_due)
		gr->resp_due = due;
}

const uint8_t *oms_igmp_tx_buf(const struct oms_igmp *g)
{
	return g->tx_buf;
}

const uint16_t *oms_igmp_tx_lens(const struct oms_igmp *g)
{
	return g->tx_lens;
}

uint32_t oms_igmp_tx_count(const struct oms_igmp *g)
{
	return g->tx_count;
}

void oms_igmp_tx_clear(struct oms_igmp *g)
{
	g->tx_count = 0;
}

const uint64_t *oms_igmp_counters(const struct oms_igmp *g)
{
	return g->counters;
}

/* ---- software filter ---- */

struct mcast_entry {
	uint32_t group;
	uint32_t source;
	uint16_t port;
};

/* A handful of subscriptions per port: a linear scan of one or two cache
 * lines beats hashing. */
struct oms_mcast_filter {
	struct mcast_entry *e;
	uint32_t n, max;
	uint64_t drops[OMS_MCAST_DROP_MAX];
	uint64_t passed;
};

struct oms_mcast_filter *oms_mcast_filter_create(uint32_t max_entries)
{
	struct oms_mcast_filter *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->e = calloc(max_entries ? max_entries : 1, sizeof(*m->e));
	if (!m->e) {
		free(m);
		return NULL;
	}
	m->max = max_entries;
	return m;
}

void oms_mcast_filter_destroy(struct oms_mcast_filter *m)
{
	if (!m)
		return;
	free(m->e);
	free(m);
}

int oms_mcast_filter_add(struct oms_mcast_filter *m, uint32_t group, uint16_t port,
			 uint32_t source)
{
	if (m->n >= m->max)
		return -1;
	m->e[m->n++] = (struct mcast_entry){.group = group, .source = source, .port = port};
	return 0;
}

int oms_mcast_filter_remove(struct oms_mcast_filter *m, uint32_t group, uint16_t port,
			    uint32_t source)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->e[i].group == group && m->e[i].port == port && m->e[i].source == source) {
			m->e[i] = m->e[--m->n];
			return 0;
		}
	return -1;
}

int oms_mcast_filter_check(struct oms_mcast_filter *m, const uint8_t *frame, uint32_t len)
{
	uint32_t off = ETH_HLEN;

	if (len < ETH_HLEN + IPV4_HLEN)
		return 1;
	uint16_t et = rd_be16(frame + 12);
	if (et == 0x8100) {
		et = rd_be16(frame + 16);
		off += VLAN_HLEN;
	}
	const uint8_t *ip = frame + off;
	if (et != 0x0800 || len < off + IPV4_HLEN || ip[9] != 17)
		return 1;
	uint32_t dst = rd_be32(ip + 16), ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if ((dst >> 28) != 0xE || len < off + ihl + UDP_HLEN)
		return 1; /* not multicast, or for the parser to count */
	uint32_t src = rd_be32(ip + 12);
	uint16_t port = rd_be16(ip + ihl + 2);
	int reason = OMS_MCAST_DROP_NO_GROUP;
	for (uint32_t i = 0; i < m->n; i++) {
		const struct mcast_entry *e = &m->e[i];
		if (e->group != dst)
			continue;
		if (e->port != port) {
			if (reason < OMS_MCAST_DROP_WRONG_PORT)
				reason = OMS_MCAST_DROP_WRONG_PORT;
			continue;
		}
		if (e->source && e->source != src) {
			reason = OMS_MCAST_DROP_WRONG_SOURCE;
			continue;
		}
		m->passed++;
		return 1;
	}
	m->drops[reason]++;
	return 0;
}

const uint64_t *oms_mcast_filter_drops(const struct oms_mcast_filter *m)
{
	return m->drops;
}

uint64_t oms_mcast_filter_passed(const struct oms_mcast_filter *m)
{
	return m->passed;
}
