/* Everything the core transmits: strategy protocol messages (one per
 * datagram) and OUCH messages in the venue framing (one per packet).
 * Messages are assembled in a local struct or written field by field into
 * the transmit slot, then the UDP/IPv4/Ethernet headers go in front. */
#include <string.h>

#include "ouch_wire.h"
#include "pipeline.h"
#include "stages_record.h"

static void sp_fill_header(struct oms_core *c, struct session *s,
			   struct sp_header *h, uint8_t type, uint16_t len)
{
	h->version = SP_VERSION;
	h->type = type;
	h->length = len;
	h->session_id = s->id;
	h->timestamp_ns = c->now_ns;
}

static void sp_frame(struct oms_core *c, struct session *s, uint8_t *f, uint32_t len)
{
	net_build_udp_opt(f, c->cfg.mac, s->mac, c->cfg.ip, s->ip, c->cfg.strategy_port, s->port,
		      len, c->cfg.checksum_offload & OMS_CSUM_TX_OFFLOAD);
	core_tx_commit(c, NET_TX_HLEN + len);
	s->last_tx = c->now_ns;
}

/* A replay ring takes a slot (a line) a message and comes back to it a lap
 * of replay_depth messages later, long after it left the cache: the slot a
 * few messages on is fetched for writing now, so that its store does not
 * miss then. */
static inline void replay_prefetch_ahead(const struct oms_core *c, uint8_t *ring, uint64_t seq)
{
	__builtin_prefetch(ring + ((seq + 4) & c->replay_mask) * REPLAY_SLOT, 1);
}

/* A message that cannot be built (TX_FULL) consumes no sequence number.
 * Sequenced messages are kept for retransmission (rule R).  Inlined, so
 * that each caller's `len` is a constant and both copies are a few vector
 * moves: a copy of unknown length is a `rep movs` here, whose start-up
 * alone cost more than the rest of the function. */
static inline __attribute__((always_inline)) void
sp_send(struct oms_core *c, struct session *s, void *msg, uint32_t len, int sequenced)
{
	struct sp_header *h = msg;
	uint8_t *f = core_tx_frame(c);
	uint8_t type = h->type;

	if (!f)
		return;
	/* session-level messages carry the next seq without consuming it */
	h->seq = sequenced ? s->next_out_seq++ : s->next_out_seq;
	memcpy(f + NET_TX_HLEN, msg, len);
	if (sequenced) {
		memcpy(s->replay + (h->seq & c->replay_mask) * REPLAY_SLOT, msg, len);
		replay_prefetch_ahead(c, s->replay, h->seq);
	}
	sp_frame(c, s, f, len);
	c->stats.event[OMS_EV_SP_MSGS_OUT]++;
	c->stats.sp_out[type]++;
}

void resend_sp(struct oms_core *c, struct session *s, uint64_t seq)
{
	const uint8_t *held = s->replay + (seq & c->replay_mask) * REPLAY_SLOT;
	uint8_t *f = core_tx_frame(c);
	struct sp_header h;

	if (!f)
		return;
	memcpy(&h, held, sizeof(h));
	memcpy(f + NET_TX_HLEN, held, h.length);
	sp_frame(c, s, f, h.length);
	c->stats.event[OMS_EV_SP_RETRANSMITTED]++;
}

void emit_session_msg(struct oms_core *c, struct session *s, uint8_t type)
{
	struct sp_header m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m, type, sizeof(m));
	sp_send(c, s, &m, sizeof(m), 0);
}

void emit_retransmit_request(struct oms_core *c, struct session *s, uint64_t from,
			     uint32_t count)
{
	struct sp_retransmit_request m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_RETRANSMIT_REQUEST, sizeof(m));
	m.from_seq = from;
	m.count = count;
	sp_send(c, s, &m, sizeof(m), 0);
}

void emit_retransmit_reject(struct oms_core *c, struct session *s, uint64_t from,
			    uint32_t count, uint8_t reason)
{
	struct sp_retransmit_reject m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_RETRANSMIT_REJECT, sizeof(m));
	m.from_seq = from;
	m.count = count;
	m.reason = reason;
	sp_send(c, s, &m, sizeof(m), 0);
}

void emit_login_accepted(struct oms_core *c, struct session *s)
{
	struct sp_login_accepted m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_LOGIN_ACCEPTED, sizeof(m));
	m.next_expected_seq = s->next_in_seq;
	sp_send(c, s, &m, sizeof(m), 0);
}

void emit_login_rejected(struct oms_core *c, struct session *s, uint8_t reason)
{
	struct sp_login_rejected m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_LOGIN_REJECTED, sizeof(m));
	m.reason = reason;
	sp_send(c, s, &m, sizeof(m), 0);
}

void emit_session_reject(struct oms_core *c, struct session *s,
			 uint64_t ref_seq, uint8_t reason, uint8_t ref_type)
{
	struct sp_session_reject m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_SESSION_REJECT, sizeof(m));
	m.ref_seq = ref_seq;
	m.reason = reason;
	m.ref_type = ref_type;
	sp_send(c, s, &m, sizeof(m), 1);
}

void emit_rejected(struct oms_core *c, struct session *s, uint64_t cl_ord_id,
		   uint16_t reason, uint8_t ref_type, uint8_t venue_code)
{
	struct sp_rejected m;

	if (reason >= 1000)
		c->stats.reject_system[(reason - 1000) % OMS_REJ_SYSTEM_SLOTS]++;
	else
		c->stats.reject_business[reason % OMS_REJ_BUSINESS_SLOTS]++;
	stage_rejected(c, ref_type, reason);
	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_REJECTED, sizeof(m));
	m.cl_ord_id = cl_ord_id;
	m.reason = reason;
	m.ref_type = ref_type;
	m.venue_code = venue_code;
	sp_send(c, s, &m, sizeof(m), 1);
}

void emit_accepted(struct oms_core *c, const struct order *o)
{
	struct session *s = &c->sessions[o->session];
	struct sp_accepted m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_ACCEPTED, sizeof(m));
	m.cl_ord_id = o->cl_ord_id;
	m.price = o->price;
	m.qty = o->qty;
	m.venue = c->venues[o->venue].id;
	sp_send(c, s, &m, sizeof(m), 1);
}

void emit_replaced(struct oms_core *c, const struct order *o)
{
	struct session *s = &c->sessions[o->session];
	struct sp_replaced m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_REPLACED, sizeof(m));
	m.cl_ord_id = o->cl_ord_id;
	m.price = o->price;
	m.qty = o->qty;
	m.leaves_qty = o->leaves_qty;
	sp_send(c, s, &m, sizeof(m), 1);
}

void emit_canceled(struct oms_core *c, const struct order *o,
		   uint32_t canceled_qty, uint8_t reason)
{
	struct session *s = &c->sessions[o->session];
	struct sp_canceled m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_CANCELED, sizeof(m));
	m.cl_ord_id = o->cl_ord_id;
	m.canceled_qty = canceled_qty;
	m.leaves_qty = o->leaves_qty;
	m.reason = reason;
	sp_send(c, s, &m, sizeof(m), 1);
}

void emit_fill(struct oms_core *c, const struct order *o, uint32_t last_qty,
	       int64_t last_price, uint64_t match_number)
{
	struct session *s = &c->sessions[o->session];
	struct sp_fill m;

	memset(&m, 0, sizeof(m));
	sp_fill_header(c, s, &m.hdr, SP_FILL, sizeof(m));
	m.cl_ord_id = o->cl_ord_id;
	m.last_price = last_price;
	m.last_qty = last_qty;
	m.cum_qty = o->cum_qty;
	m.leaves_qty = o->leaves_qty;
	m.match_number = match_number;
	sp_send(c, s, &m, sizeof(m), 1);
}

/* Room for the framing header and one block length in front of the OUCH
 * message. */
#define VENUE_MSG_OFF (NET_TX_HLEN + UFO_HLEN + 2)

static uint8_t *venue_begin(struct oms_core *c)
{
	uint8_t *f = core_tx_frame(c);

	return f ? f + VENUE_MSG_OFF : NULL;
}

/* Framing header + one block around the message at msg, then UDP/IPv4/
 * Ethernet in front. */
static void venue_frame(struct oms_core *c, struct venue *v, uint8_t *msg, uint32_t len,
			uint64_t seq)
{
	uint8_t *f = msg - VENUE_MSG_OFF;
	uint8_t *p = f + NET_TX_HLEN;

	memcpy(p + UFO_OFF_SESSION, v->session, UFO_SESSION_LEN);
	wr_be64(p + UFO_OFF_SEQ, seq);
	wr_be16(p + UFO_OFF_COUNT, 1);
	wr_be16(p + UFO_HLEN, (uint16_t)len);
	net_build_udp_opt(f, c->cfg.mac, v->mac, c->cfg.ip, v->ip,
		      c->cfg.venue_port, v->port, UFO_HLEN + 2 + len,
		      c->cfg.checksum_offload & OMS_CSUM_TX_OFFLOAD);
	core_tx_commit(c, VENUE_MSG_OFF + len);
	v->last_tx = c->now_ns;
}

static void venue_finish(struct oms_core *c, struct venue *v, uint8_t *msg,
			 uint32_t len)
{
	uint64_t seq = v->next_out_seq++;
	uint8_t *held = v->replay + (seq & c->replay_mask) * REPLAY_SLOT;

	wr_be16(held, (uint16_t)len);
	memcpy(held + 2, msg, len);
	replay_prefetch_ahead(c, v->replay, seq);
	venue_frame(c, v, msg, len, seq);
	c->stats.event[OMS_EV_VENUE_MSGS_OUT]++;
	c->stats.venue_out[msg[0]]++;
}

void resend_venue(struct oms_core *c, struct venue *v, uint64_t seq)
{
	const uint8_t *held = v->replay + (seq & c->replay_mask) * REPLAY_SLOT;
	uint8_t *m = venue_begin(c);

	if (!m)
		return;
	uint32_t len = rd_be16(held);
	memcpy(m, held + 2, len);
	venue_frame(c, v, m, len, seq);
	c->stats.event[OMS_EV_VENUE_RETRANSMITTED]++;
}

/* A packet of the framing header alone: a heartbeat to the venue's data
 * port, or a (re-)request to its request port. */
static void venue_header_only(struct oms_core *c, struct venue *v, uint16_t sport,
			      uint16_t dport, uint64_t seq, uint16_t count)
{
	uint8_t *f = core_tx_frame(c);

	if (!f)
		return;
	uint8_t *p = f + NET_TX_HLEN;
	memcpy(p + UFO_OFF_SESSION, v->session, UFO_SESSION_LEN);
	wr_be64(p + UFO_OFF_SEQ, seq);
	wr_be16(p + UFO_OFF_COUNT, count);
	net_build_udp_opt(f, c->cfg.mac, v->mac, c->cfg.ip, v->ip, sport, dport, UFO_HLEN,
		      c->cfg.checksum_offload & OMS_CSUM_TX_OFFLOAD);
	core_tx_commit(c, NET_TX_HLEN + UFO_HLEN);
	v->last_tx = c->now_ns;
}

void send_venue_heartbeat(struct oms_core *c, struct venue *v)
{
	venue_header_only(c, v, c->cfg.venue_port, v->port, v->next_out_seq, 0);
}

void send_venue_request(struct oms_core *c, struct venue *v, uint64_t from, uint16_t count)
{
	venue_header_only(c, v, c->cfg.venue_request_port, v->request_port, from, count);
}

/* ClOrdID: the client order id in upper-case base 36 (at most 13 digits
 * for a u64), left-justified and space padded to OUCH's 14 bytes.  The
 * digits are counted first so that they go straight to their places over a
 * fixed-size fill of spaces (no reversal, no variable-length memset), and
 * ids under 2^32 - every id in practice - divide in 32 bits. */
static void put_clordid(uint8_t *p, uint64_t id)
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	static const uint64_t pow36[13] = {
		1ull, 36ull, 1296ull, 46656ull, 1679616ull, 60466176ull, 2176782336ull,
		78364164096ull, 2821109907456ull, 101559956668416ull, 3656158440062976ull,
		131621703842267136ull, 4738381338321616896ull};
	uint32_t n = 1;

	while (n < 13 && id >= pow36[n])
		n++;
	memset(p, ' ', OUCH_CLORDID_LEN);
	uint8_t *q = p + n;
	for (; id > 0xffffffffu; id /= 36)
		*--q = (uint8_t)digits[id % 36];
	for (uint32_t v = (uint32_t)id; q > p; v /= 36)
		*--q = (uint8_t)digits[v % 36];
}

static const uint8_t ouch_side[] = {0, 'B', 'S', 'T'};
static const uint8_t ouch_tif[] = {0, '0', '3'};

static uint64_t ouch_price(const struct order *o, int64_t price)
{
	if (o->ord_type == SP_ORD_MARKET)
		return OUCH_MARKET_PRICE;
	return (uint64_t)(price / 10000);
}

/* SharesLocated 'Y' (tag 25) for short sales with a locate: OUCH 5.0
 * Appendix A requires it on Enter and on every Replace. */
static uint32_t put_appendage(uint8_t *p, const struct order *o)
{
	if (o->side == SP_SIDE_SELL_SHORT && (o->flags & SP_FLAG_LOCATE)) {
		wr_be16(p, 3);
		p[2] = 2;
		p[3] = OUCH_TAG_SHARES_LOCATED;
		p[4] = 'Y';
		return 5;
	}
	wr_be16(p, 0);
	return 2;
}

void send_enter_order(struct oms_core *c, const struct order *o)
{
	struct venue *v = &c->venues[o->venue];
	uint8_t *m = venue_begin(c);

	if (!m)
		return;
	m[0] = 'O';
	wr_be32(m + OUCH_ENTER_OFF_REF, o->ref);
	m[OUCH_ENTER_OFF_SIDE] = ouch_side[o->side];
	wr_be32(m + OUCH_ENTER_OFF_QTY, o->qty);
	memcpy(m + OUCH_ENTER_OFF_SYMBOL, &o->symbol_key_, 8);
	wr_be64(m + OUCH_ENTER_OFF_PRICE, ouch_price(o, o->price));
	m[OUCH_ENTER_OFF_TIF] = ouch_tif[o->tif];
	m[OUCH_ENTER_OFF_DISPLAY] = 'Y';
	m[OUCH_ENTER_OFF_CAPACITY] = c->cfg.ouch_capacity;
	m[OUCH_ENTER_OFF_ISO] = 'N';
	m[OUCH_ENTER_OFF_CROSS] = 'N';
	put_clordid(m + OUCH_ENTER_OFF_CLORDID, o->cl_ord_id);
	uint32_t app = put_appendage(m + OUCH_ENTER_OFF_APPLEN, o);
	venue_finish(c, v, m, OUCH_ENTER_OFF_APPLEN + app);
	stage_routed(c, o->venue);
}

void send_replace_order(struct oms_core *c, const struct order *o)
{
	struct venue *v = &c->venues[o->venue];
	uint8_t *m = venue_begin(c);

	if (!m)
		return;
	m[0] = 'U';
	wr_be32(m + OUCH_REPLACE_OFF_ORIG_REF, o->ref);
	wr_be32(m + OUCH_REPLACE_OFF_REF, o->pending_ref);
	wr_be32(m + OUCH_REPLACE_OFF_QTY, o->pending_qty);
	wr_be64(m + OUCH_REPLACE_OFF_PRICE, ouch_price(o, o->pending_price));
	m[OUCH_REPLACE_OFF_TIF] = ouch_tif[o->tif];
	m[OUCH_REPLACE_OFF_DISPLAY] = 'Y';
	m[OUCH_REPLACE_OFF_ISO] = 'N';
	put_clordid(m + OUCH_REPLACE_OFF_CLORDID, o->cl_ord_id);
	uint32_t app = put_appendage(m + OUCH_REPLACE_OFF_APPLEN, o);
	venue_finish(c, v, m, OUCH_REPLACE_OFF_APPLEN + app);
}

void send_cancel_order(struct oms_core *c, const struct order *o)
{
	struct venue *v = &c->venues[o->venue];
	uint8_t *m = venue_begin(c);

	if (!m)
		return;
	m[0] = 'X';
	wr_be32(m + OUCH_CANCEL_OFF_REF, o->ref);
	wr_be32(m + OUCH_CANCEL_OFF_QTY, 0);
	venue_finish(c, v, m, OUCH_CANCEL_LEN);
}
