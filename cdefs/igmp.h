/* IGMPv3 host side (RFC 3376) for a DPDK port, which the kernel no longer
 * speaks for, and the software multicast filter for ports without a
 * multicast address list (docs/market-data.md "Multicast").
 *
 * Membership reports go to 224.0.0.22 with TTL 1 and the Router Alert
 * option.  Joins and leaves send state-change reports, repeated robustness
 * times at the unsolicited report interval; queries are answered after a
 * random delay below their Max Resp Time, drawn from a seeded generator:
 * like the core, this reads no clock and the same calls with the same
 * now_ns send the same bytes.  Included from oms_core.h (cffi binds it). */
#ifndef OMS_IGMP_H
#define OMS_IGMP_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

enum {
	IGMP_ALL_REPORTS = 0xE0000016, /* 224.0.0.22, IGMPv3-capable routers */
	IGMP_TYPE_QUERY = 0x11,
	IGMP_TYPE_V3_REPORT = 0x22,
	/* group record types (RFC 3376 4.2.12) */
	IGMP_MODE_IS_INCLUDE = 1,
	IGMP_MODE_IS_EXCLUDE = 2,
	IGMP_CHANGE_TO_INCLUDE = 3,
	IGMP_CHANGE_TO_EXCLUDE = 4,
	IGMP_ALLOW_NEW_SOURCES = 5,
	IGMP_BLOCK_OLD_SOURCES = 6,
	OMS_IGMP_MAX_SOURCES = 8, /* per group */
};

#define OMS_IGMP_COUNTER_LIST(X)                                              \
	X(REPORTS_SENT) X(STATE_CHANGES) X(GENERAL_QUERIES) X(GROUP_QUERIES)  \
	X(QUERIES_OTHER_GROUP) X(NOT_IGMP) X(NOT_QUERY) X(TRUNCATED)          \
	X(BAD_CHECKSUM) X(TX_FULL) X(GROUPS_FULL) X(SOURCES_FULL)             \
	X(NOT_MEMBER)

#define OMS_IGMP_ENUM(n) OMS_IGMP_##n,
enum oms_igmp_counter { OMS_IGMP_COUNTER_LIST(OMS_IGMP_ENUM) OMS_IGMP_COUNTER_MAX };

struct oms_igmp_config {
	uint8_t mac[6];
	uint32_t ip;              /* host byte order */
	uint8_t robustness;       /* reports per state change (0: 2) */
	uint64_t unsolicited_ns;  /* between them (0: 1 s, RFC 3376 8.11) */
	uint64_t seed;            /* of the query response delays */
	uint32_t max_groups;
	uint32_t tx_capacity;     /* frames between tx_clear()s (0: 16) */
};

struct oms_igmp;

struct oms_igmp *oms_igmp_create(const struct oms_igmp_config *cfg);
void oms_igmp_destroy(struct oms_igmp *g);
/* source 0: any source.  A subscription counts: two joins need two
 * leaves.  0, or -1 when a table is full (counted) or, for a leave, the
 * membership is not there. */
int oms_igmp_join(struct oms_igmp *g, uint32_t group, uint32_t source, uint64_t now_ns);
int oms_igmp_leave(struct oms_igmp *g, uint32_t group, uint32_t source, uint64_t now_ns);
/* An IGMP frame from the port (a query schedules an answer). */
void oms_igmp_rx(struct oms_igmp *g, const uint8_t *frame, uint32_t len, uint64_t now_ns);
/* Sends what is due at now_ns; returns the frames waiting. */
uint32_t oms_igmp_poll(struct oms_igmp *g, uint64_t now_ns);
uint64_t oms_igmp_next_deadline(const struct oms_igmp *g);
const uint8_t *oms_igmp_tx_buf(const struct oms_igmp *g); /* OMS_TX_SLOT apart */
const uint16_t *oms_igmp_tx_lens(const struct oms_igmp *g);
uint32_t oms_igmp_tx_count(const struct oms_igmp *g);
void oms_igmp_tx_clear(struct oms_igmp *g);
const uint64_t *oms_igmp_counters(const struct oms_igmp *g);
const char *oms_igmp_counter_name(int i);

/* 01:00:5e and the group's low 23 bits (RFC 1112 6.4). */
void oms_mcast_mac(uint32_t group, uint8_t mac[6]);

/* Software filter: IPv4 UDP datagrams to a multicast group pass only when
 * (group, UDP port, source) matches a subscription (source 0: any); other
 * frames are not its business and pass. */
#define OMS_MCAST_DROP_LIST(X) X(NO_GROUP) X(WRONG_PORT) X(WRONG_SOURCE)
#define OMS_MCAST_ENUM(n) OMS_MCAST_DROP_##n,
enum oms_mcast_drop { OMS_MCAST_DROP_LIST(OMS_MCAST_ENUM) OMS_MCAST_DROP_MAX };

struct oms_mcast_filter;

struct oms_mcast_filter *oms_mcast_filter_create(uint32_t max_entries);
void oms_mcast_filter_destroy(struct oms_mcast_filter *m);
int oms_mcast_filter_add(struct oms_mcast_filter *m, uint32_t group, uint16_t port,
			 uint32_t source);
int oms_mcast_filter_remove(struct oms_mcast_filter *m, uint32_t group, uint16_t port,
			    uint32_t source);
/* 1: pass, 0: dropped (counted by reason). */
int oms_mcast_filter_check(struct oms_mcast_filter *m, const uint8_t *frame, uint32_t len);
const uint64_t *oms_mcast_filter_drops(const struct oms_mcast_filter *m);
uint64_t oms_mcast_filter_passed(const struct oms_mcast_filter *m);

#endif
