/* A burst's lookups, fetched before its first frame is handled.
 *
 * Handling a frame is mostly waiting for memory: the order index slot of a
 * strategy message's ClOrdID or of a venue message's UserRefNum, then the
 * order record it points to, each likely a miss once thousands of orders
 * are live.  Handled one frame at a time, those misses come one after the
 * other.  Here, before the burst is handled, every frame's keys are read
 * off the wire and their index slots fetched (first pass), then the indexes
 * - by now in cache - are looked up and the order records fetched (second
 * pass), so the misses of the whole burst overlap, in the manner of DPDK's
 * multi-stage prefetching (examples/l3fwd, librte_hash's bulk lookup).
 *
 * Nothing here changes state or decides anything: a key read from a frame
 * that turns out to be malformed, or an order the burst's earlier frames
 * re-key, costs a wasted prefetch and no more. */
#include <string.h>

#include "ouch_wire.h"
#include "pipeline.h"
#include "sp_wire.h"

/* messages of one datagram looked at; the rest are handled unfetched */
#define PREFETCH_PER_FRAME 4

struct key {
	uint64_t id;  /* ClOrdID, or UserRefNum */
	uint32_t aux; /* session index, or venue index */
	uint8_t by_ref;
};

static uint32_t strategy_keys(const struct oms_core *c, const struct net_udp_view *u,
			      struct key *k)
{
	const uint8_t *p = u->payload;
	uint32_t left = u->payload_len, n = 0;

	while (left >= sizeof(struct sp_header) && n < PREFETCH_PER_FRAME) {
		struct sp_header h;
		memcpy(&h, p, sizeof(h));
		if (h.length < sizeof(h) || h.length > left)
			break;
		if ((h.type == SP_NEW_ORDER || h.type == SP_MODIFY || h.type == SP_CANCEL) &&
		    h.length >= sizeof(h) + sizeof(uint64_t)) {
			const struct session *s = core_session_by_id(c, h.session_id);
			if (s) {
				memcpy(&k[n].id, p + sizeof(h), sizeof(uint64_t));
				k[n].aux = (uint32_t)(s - c->sessions);
				k[n].by_ref = 0;
				n++;
			}
		}
		p += h.length;
		left -= h.length;
	}
	return n;
}

static uint32_t venue_keys(const struct oms_core *c, const struct net_udp_view *u,
			   struct key *k)
{
	const struct venue *v = venue_by_ip(c, u->src_ip);
	const uint8_t *p = u->payload;
	uint32_t n = 0;

	if (!v || u->payload_len < UFO_HLEN)
		return 0;
	uint32_t count = ((uint32_t)p[UFO_OFF_COUNT] << 8) | p[UFO_OFF_COUNT + 1];
	uint32_t off = UFO_HLEN;
	for (uint32_t i = 0; i < count && n < PREFETCH_PER_FRAME; i++) {
		if (off + 2 > u->payload_len)
			break;
		uint32_t len = ((uint32_t)p[off] << 8) | p[off + 1];
		const uint8_t *m = p + off + 2;
		off += 2 + len;
		uint32_t at = m[0] == 'U' ? OUCH_REPLACED_OFF_REF : OUCH_OFF_REF;
		if (len == 0 || off > u->payload_len || len < at + 4)
			break;
		k[n].id = ((uint32_t)m[at] << 24) | ((uint32_t)m[at + 1] << 16) |
			  ((uint32_t)m[at + 2] << 8) | m[at + 3];
		k[n].aux = (uint32_t)(v - c->venues);
		k[n].by_ref = 1;
		n++;
	}
	return n;
}

void burst_prefetch(const struct oms_core *c, const struct net_udp_view *u, const int *r,
		    uint32_t n)
{
	struct key keys[OMS_PREFETCH_BURST * PREFETCH_PER_FRAME];
	uint32_t nk = 0;
	const struct order_table *t = &c->orders;

	if (n < 2) /* nothing to overlap with */
		return;
	for (uint32_t i = 0; i < n; i++) {
		if (r[i] != OMS_OK)
			continue;
		if (u[i].dst_port == c->cfg.strategy_port)
			nk += strategy_keys(c, &u[i], keys + nk);
		else if (u[i].dst_port == c->cfg.venue_port)
			nk += venue_keys(c, &u[i], keys + nk);
	}
	for (uint32_t i = 0; i < nk; i++)
		__builtin_prefetch(keys[i].by_ref ? ref_home(&t->by_ref, (uint32_t)keys[i].id,
							      keys[i].aux)
						  : index_home(&t->by_id, keys[i].id, keys[i].aux));
	for (uint32_t i = 0; i < nk; i++) {
		uint32_t o = keys[i].by_ref ? ref_find(&t->by_ref, (uint32_t)keys[i].id, keys[i].aux)
					    : index_find(&t->by_id, keys[i].id, keys[i].aux);
		if (o != ORDER_NIL) {
			/* the state and sides (line 0-1) and the state's time
			 * stamp (line 2) are written by every message */
			const char *od = (const char *)&t->orders[o];
			__builtin_prefetch(od, 1);
			__builtin_prefetch(od + 64, 1);
			__builtin_prefetch(od + 128, 1);
		}
	}
}
