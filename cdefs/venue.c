/* Venue packets in: the framing's sequencing, then the OUCH 5.0 messages
 * that move orders (docs/semantics.md, "Venue packets"). */
#include <string.h>

#include "ouch_wire.h"
#include "pipeline.h"
#include "stages_record.h"

struct venue *venue_by_ip(const struct oms_core *c, uint32_t ip)
{
	for (uint32_t i = 0; i < c->n_venues; i++)
		if (c->venues[i].ip == ip)
			return (struct venue *)&c->venues[i];
	return NULL;
}

/* Minimum length of each OUCH outbound message we handle, and whether its
 * Appendage Length field is required (1) or optional (2), OUCH 5.0 §3. */
struct ouch_shape {
	uint8_t min_len;
	uint8_t appendage;
};

static const struct ouch_shape shapes[256] = {
	['A'] = {OUCH_ACCEPTED_LEN, 1},
	['U'] = {OUCH_REPLACED_LEN, 1},
	['C'] = {OUCH_CANCELED_LEN, 2},
	['E'] = {OUCH_EXECUTED_LEN, 1},
	['J'] = {OUCH_REJECTED_LEN, 2},
	['I'] = {OUCH_CANCEL_REJECT_LEN, 2},
};

static int ouch_length_ok(const uint8_t *m, uint32_t len)
{
	const struct ouch_shape *sh = &shapes[m[0]];

	if (len < sh->min_len)
		return 0;
	if (sh->appendage == 1) {
		/* the required Appendage Length is the last 2 fixed bytes */
		return rd_be16(m + sh->min_len - 2) == len - sh->min_len;
	}
	if (len == sh->min_len)
		return 1;
	return len >= sh->min_len + 2u &&
	       rd_be16(m + sh->min_len) == len - sh->min_len - 2u;
}

static int is_ignored_type(uint8_t t)
{
	switch (t) {
	case 'S': case 'B': case 'D': case 'P': case 'T': case 'M':
	case 'R': case 'X': case 'G': case 'K': case 'Q':
		return 1;
	}
	return 0;
}

void order_venue_cancel(struct oms_core *c, uint32_t o, uint32_t dec, uint8_t reason)
{
	struct order *od = &c->orders.orders[o];

	if (dec > od->leaves_qty)
		dec = od->leaves_qty;
	od->leaves_qty -= dec;
	emit_canceled(c, od, dec, reason);
	if (od->leaves_qty == 0)
		order_enter_state(c, o,
				  reason == SP_CXL_IOC ? OMS_ST_EXPIRED
						       : OMS_ST_CANCELED);
	risk_update(&c->risk, od);
}

void order_accept(struct oms_core *c, uint32_t o)
{
	struct order *od = &c->orders.orders[o];

	od->acked = 1;
	if (od->state == OMS_ST_PENDING_NEW)
		order_enter_state(c, o, OMS_ST_NEW);
	else
		od->prev_state = OMS_ST_NEW;
	emit_accepted(c, od);
}

static void on_accepted(struct oms_core *c, uint32_t o, const uint8_t *m)
{
	struct order *od = &c->orders.orders[o];

	if (od->acked || (od->state != OMS_ST_PENDING_NEW &&
			  od->state != OMS_ST_PENDING_CANCEL)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	order_accept(c, o);
	if (m[OUCH_ACCEPTED_OFF_STATE] == 'D')
		order_venue_cancel(c, o, od->leaves_qty, SP_CXL_VENUE);
}

static void on_replaced(struct oms_core *c, uint32_t o, uint32_t new_ref)
{
	struct order *od = &c->orders.orders[o];

	if (od->state != OMS_ST_PENDING_REPLACE || od->pending_ref != new_ref) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	ref_erase(&c->orders.by_ref, od->ref, od->venue);
	od->ref = od->pending_ref;
	od->pending_ref = 0;
	od->price = od->pending_price;
	od->qty = od->pending_qty;
	/* fills that arrived after the Modify may already cover the new
	 * quantity: then nothing is left and the order is done */
	od->leaves_qty = od->qty > od->cum_qty ? od->qty - od->cum_qty : 0;
	order_enter_state(c, o, OMS_ST_REPLACED);
	emit_replaced(c, od);
	if (od->leaves_qty == 0)
		order_enter_state(c, o, OMS_ST_FILLED);
	risk_update(&c->risk, od);
}

static void on_executed(struct oms_core *c, uint32_t o, const uint8_t *m)
{
	struct order *od = &c->orders.orders[o];
	uint32_t q = rd_be32(m + OUCH_EXECUTED_OFF_QTY);

	if (state_is_terminal(od->state)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	if (q == 0 || q > od->leaves_qty) {
		c->stats.drop[OMS_DROP_OUCH_OVERFILL]++;
		return;
	}
	/* unsigned multiply: a nonsense price wraps instead of being UB */
	order_execute(c, o, q, (int64_t)(rd_be64(m + OUCH_EXECUTED_OFF_PRICE) * 10000u),
		      rd_be64(m + OUCH_EXECUTED_OFF_MATCH));
}

void order_execute(struct oms_core *c, uint32_t o, uint32_t q, int64_t px,
		   uint64_t match)
{
	struct order *od = &c->orders.orders[o];

	od->cum_qty += q;
	od->leaves_qty -= q;
	risk_fill(&c->risk, od, q);
	emit_fill(c, od, q, px, match);
	if (od->leaves_qty == 0) {
		order_enter_state(c, o, OMS_ST_FILLED);
		risk_update(&c->risk, od);
		return;
	}
	risk_update(&c->risk, od);
	switch (od->state) {
	case OMS_ST_NEW:
	case OMS_ST_REPLACED:
	case OMS_ST_PARTIALLY_FILLED:
		order_enter_state(c, o, OMS_ST_PARTIALLY_FILLED);
		break;
	default:
		if (od->prev_state == OMS_ST_NEW ||
		    od->prev_state == OMS_ST_REPLACED)
			od->prev_state = OMS_ST_PARTIALLY_FILLED;
	}
}

static void on_canceled(struct oms_core *c, uint32_t o, const uint8_t *m)
{
	struct order *od = &c->orders.orders[o];
	uint8_t r = m[OUCH_CANCELED_OFF_REASON];

	if (state_is_terminal(od->state)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	order_venue_cancel(c, o, rd_be32(m + OUCH_CANCELED_OFF_QTY),
			    r == 'I' ? SP_CXL_IOC
				     : r == 'U' ? SP_CXL_USER : SP_CXL_VENUE);
}

static void on_rejected(struct oms_core *c, uint32_t o, uint32_t ref,
			const uint8_t *m)
{
	struct order *od = &c->orders.orders[o];
	uint8_t code = (uint8_t)rd_be16(m + OUCH_REJECTED_OFF_REASON);
	struct session *s = &c->sessions[od->session];

	if (od->state == OMS_ST_PENDING_REPLACE && ref == od->pending_ref) {
		ref_erase(&c->orders.by_ref, od->pending_ref, od->venue);
		od->pending_ref = 0;
		order_enter_state(c, o, od->prev_state);
		risk_update(&c->risk, od);
		emit_rejected(c, s, od->cl_ord_id, SP_REJ_VENUE_REJECTED,
			      SP_MODIFY, code);
	} else if (od->state == OMS_ST_PENDING_NEW ||
		   (od->state == OMS_ST_PENDING_CANCEL && !od->acked)) {
		order_enter_state(c, o, OMS_ST_REJECTED);
		risk_update(&c->risk, od);
		emit_rejected(c, s, od->cl_ord_id, SP_REJ_VENUE_REJECTED,
			      SP_NEW_ORDER, code);
	} else {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
	}
}

static void on_cancel_reject(struct oms_core *c, uint32_t o)
{
	struct order *od = &c->orders.orders[o];

	if (od->state != OMS_ST_PENDING_CANCEL) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	order_enter_state(c, o, od->prev_state);
	emit_rejected(c, &c->sessions[od->session], od->cl_ord_id,
		      SP_REJ_VENUE_REJECTED, SP_CANCEL, 0);
}

static void on_ouch(struct oms_core *c, struct venue *v, const uint8_t *m,
		    uint32_t len)
{
	uint8_t t = m[0];

	if (shapes[t].min_len == 0) {
		if (is_ignored_type(t))
			c->stats.event[OMS_EV_VENUE_IGNORED_TYPES]++;
		else
			c->stats.drop[OMS_DROP_OUCH_UNKNOWN_TYPE]++;
		return;
	}
	if (!ouch_length_ok(m, len)) {
		c->stats.drop[OMS_DROP_OUCH_BAD_LENGTH]++;
		return;
	}
	uint32_t ref = rd_be32(m + (t == 'U' ? OUCH_REPLACED_OFF_REF
					      : OUCH_OFF_REF));
	uint16_t vix = (uint16_t)(v - c->venues);
	uint32_t o = ref_find(&c->orders.by_ref, ref, vix);
	if (o == ORDER_NIL) {
		c->stats.drop[OMS_DROP_OUCH_UNKNOWN_REF]++;
		return;
	}
	if (!c->orders.orders[o].answered)
		venue_order_answered(c, v, &c->orders.orders[o]);
	if (!c->orders.orders[o].fill_counted &&
	    (t == 'E' || t == 'C' || (t == 'J' && !c->orders.orders[o].acked)))
		venue_fill_outcome(v, &c->orders.orders[o], t == 'E');
	stage_venue_answer(c, o, t, ref);
	if (c->orders.orders[o].is_child) {
		split_child_answer(c, o, t, m);
		return;
	}
	switch (t) {
	case 'A':
		on_accepted(c, o, m);
		break;
	case 'U':
		on_replaced(c, o, ref);
		break;
	case 'E':
		on_executed(c, o, m);
		break;
	case 'C':
		on_canceled(c, o, m);
		break;
	case 'J':
		on_rejected(c, o, ref, m);
		break;
	default: /* 'I' */
		on_cancel_reject(c, o);
		break;
	}
}

/* Rule VG: ask the venue to resend from the next expected (MoldUDP64's
 * re-request), unless a request is already on its way. */
void venue_request_gap(struct oms_core *c, struct venue *v, uint64_t count)
{
	if (v->gap_req_count && c->now_ns < v->gap_req_ns + c->cfg.retransmit_ns)
		return;
	if (count > OMS_REQUEST_WINDOW)
		count = OMS_REQUEST_WINDOW;
	send_venue_request(c, v, v->next_in_seq, (uint16_t)count);
	v->gap_req_ns = c->now_ns;
	v->gap_req_count = (uint32_t)count;
	c->stats.event[OMS_EV_VENUE_SEQ_GAPS]++;
	c->stats.event[OMS_EV_VENUE_SEQ_GAP_MSGS] += count;
	timer_at(c, c->now_ns + c->cfg.retransmit_ns);
}

/* Checks common to data packets and requests from a venue; the venue, or
 * NULL when the packet was dropped. */
static struct venue *venue_of(struct oms_core *c, const struct net_udp_view *u)
{
	struct venue *v = venue_by_ip(c, u->src_ip);

	if (!v) {
		c->stats.drop[OMS_DROP_UFO_UNKNOWN_VENUE]++;
		return NULL;
	}
	if (u->payload_len < UFO_HLEN) {
		c->stats.drop[OMS_DROP_UFO_TRUNCATED]++;
		return NULL;
	}
	if (memcmp(u->payload + UFO_OFF_SESSION, v->session, UFO_SESSION_LEN) != 0) {
		c->stats.drop[OMS_DROP_UFO_WRONG_SESSION]++;
		return NULL;
	}
	v->last_rx = c->now_ns;
	if (v->down) {
		v->down = 0;
		c->stats.event[OMS_EV_VENUE_RECONNECTS]++;
		timer_at(c, c->now_ns + v->timeout_ns);
	}
	return v;
}

void venue_packet(struct oms_core *c, const struct net_udp_view *u)
{
	struct venue *v = venue_of(c, u);
	const uint8_t *p = u->payload;

	if (!v)
		return;
	uint64_t seq = rd_be64(p + UFO_OFF_SEQ);
	uint16_t count = rd_be16(p + UFO_OFF_COUNT);
	if (count == 0) {
		c->stats.event[OMS_EV_VENUE_HEARTBEATS]++;
		if (seq > v->next_in_seq)
			venue_request_gap(c, v, seq - v->next_in_seq);
		return;
	}
	if (count == UFO_COUNT_END_OF_SESSION) {
		c->stats.event[OMS_EV_VENUE_END_OF_SESSION]++;
		return;
	}
	if (seq > v->next_in_seq) {
		/* go-back-N: nothing out of order is handled */
		c->stats.drop[OMS_DROP_UFO_OUT_OF_ORDER]++;
		venue_request_gap(c, v, seq + count - v->next_in_seq);
		return;
	}

	uint32_t off = UFO_HLEN;
	for (uint32_t i = 0; i < count; i++, seq++) {
		if (off + 2 > u->payload_len) {
			c->stats.drop[OMS_DROP_UFO_BAD_BLOCK]++;
			return;
		}
		uint32_t len = rd_be16(p + off);
		if (len == 0 || off + 2 + len > u->payload_len) {
			c->stats.drop[OMS_DROP_UFO_BAD_BLOCK]++;
			return;
		}
		const uint8_t *m = p + off + 2;
		off += 2 + len;
		if (seq < v->next_in_seq) {
			c->stats.drop[OMS_DROP_UFO_DUPLICATE_SEQ]++;
			continue;
		}
		v->next_in_seq = seq + 1;
		v->gap_req_count = 0;
		c->stats.event[OMS_EV_VENUE_MSGS_IN]++;
		c->stats.venue_in[m[0]]++;
		on_ouch(c, v, m, len);
	}
}

void venue_request(struct oms_core *c, const struct net_udp_view *u)
{
	struct venue *v = venue_of(c, u);

	if (!v)
		return;
	c->stats.event[OMS_EV_VENUE_RETRANSMIT_REQUESTS]++;
	uint64_t from = rd_be64(u->payload + UFO_OFF_SEQ);
	uint64_t count = rd_be16(u->payload + UFO_OFF_COUNT);
	uint64_t depth = c->cfg.replay_depth;
	uint64_t oldest = v->next_out_seq > depth + 1 ? v->next_out_seq - depth : 1;

	if (count == 0 || from >= v->next_out_seq) {
		send_venue_heartbeat(c, v); /* a hello, or nothing to resend */
		return;
	}
	if (from < oldest) {
		c->stats.event[OMS_EV_VENUE_RETRANSMIT_TOO_OLD]++;
		return;
	}
	uint64_t end = from + count;
	if (end > v->next_out_seq)
		end = v->next_out_seq;
	if (end > from + 1024)
		end = from + 1024;
	for (uint64_t s = from; s < end; s++)
		resend_venue(c, v, s);
}
