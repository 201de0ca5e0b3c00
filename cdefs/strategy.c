/* Strategy protocol in: framing of messages in a datagram, session checks,
 * sequencing, and the order checks of NewOrder, Modify, Cancel and
 * MassCancel (docs/semantics.md, "Strategy datagrams"). */
#include <string.h>

#include "ouch_wire.h"
#include "pipeline.h"
#include "stages_record.h"

/* OUCH carries 4 decimals and at most $199,999.99; our prices have 8. */
static int price_fits_ouch(int64_t price)
{
	return price > 0 && price % 10000 == 0 &&
	       price / 10000 <= OUCH_MAX_PRICE;
}

/* The routing rule for an order that names no venue: the most specific
 * of the generation (venue 0: none matches). */
static struct risk_route route(const struct risk_gen *g, uint32_t acct, uint32_t pos,
			       uint32_t instrument)
{
	if (pos != RISK_NIL && g->positions[pos].route.venue)
		return g->positions[pos].route;
	if (g->instruments[instrument].route.venue)
		return g->instruments[instrument].route;
	if (acct != RISK_NIL && g->account_route[acct].venue)
		return g->account_route[acct];
	return g->default_route;
}

static uint16_t check_new_order(struct oms_core *c, struct session *s,
				const struct sp_new_order *m, uint32_t *venue,
				struct risk_verdict *rv, uint32_t *instrument,
				struct route_plan *plan)
{
	uint32_t si = (uint32_t)(s - c->sessions);
	const struct risk_gen *g = c->gen;

	if (index_find(&c->orders.by_id, m->cl_ord_id, si) != ORDER_NIL)
		return SP_REJ_DUPLICATE_ID;
	if (m->side < SP_SIDE_BUY || m->side > SP_SIDE_SELL_SHORT)
		return SP_REJ_BAD_SIDE;
	if (m->ord_type != SP_ORD_LIMIT && m->ord_type != SP_ORD_MARKET)
		return SP_REJ_BAD_ORD_TYPE;
	if ((m->tif != SP_TIF_DAY && m->tif != SP_TIF_IOC) ||
	    (m->ord_type == SP_ORD_MARKET && m->tif == SP_TIF_DAY))
		return SP_REJ_BAD_TIF;
	if (m->qty == 0 || m->qty > OUCH_MAX_QTY)
		return SP_REJ_BAD_QTY;
	*instrument = risk_symbol_find(g, m->symbol);
	if (*instrument == RISK_NIL)
		return SP_REJ_UNKNOWN_SYMBOL;
	if (m->ord_type == SP_ORD_LIMIT ? m->price <= 0 : m->price != 0)
		return SP_REJ_BAD_PRICE;
	if (m->venue) {
		uint16_t vix = c->venue_by_id[m->venue];
		if (vix == 0)
			return SP_REJ_UNKNOWN_VENUE;
		*venue = vix - 1u;
	} else {
		uint32_t a = risk_account_find(g, m->account);
		uint32_t p = a == RISK_NIL ? RISK_NIL
					   : risk_position_find(g, a, *instrument);
		struct risk_route r = route(g, a, p, *instrument);
		if (r.venue == 0)
			return SP_REJ_UNKNOWN_VENUE;
		if (r.venue != RISK_ROUTE_SOR) {
			*venue = r.venue - 1u;
		} else {
			*venue = router_choose(c, s, m, *instrument, r.exclude, plan);
			if (*venue == RISK_NIL)
				return SP_REJ_NO_ROUTE;
		}
	}
	if (m->ord_type == SP_ORD_LIMIT && !price_fits_ouch(m->price))
		return SP_REJ_PRICE_UNREPRESENTABLE;
	if (m->side == SP_SIDE_SELL_SHORT && !(m->flags & SP_FLAG_LOCATE))
		return SP_REJ_LOCATE_REQUIRED;
	const struct venue *v = &c->venues[*venue];
	const struct risk_instrument *in = &g->instruments[*instrument];
	struct risk_request rq = {
		.account = m->account, .instrument = *instrument, .venue = *venue,
		.qty = m->qty, .price = m->price, .side = m->side,
		.ord_type = m->ord_type, .tif = m->tif,
		.ref_price = market_ref_price(v, *instrument, in->ref_price, in->tick),
		.feed_halted = (uint8_t)market_halted(v, *instrument),
	};
	return risk_check_new(g, &c->risk, &g->rates[si], &s->throttle,
			      c->now_ns, &rq, rv);
}

/* A split order's children: copies of the parent with their own venue,
 * UserRefNum and quantity, holding no risk (the parent holds it). */
static void new_children(struct oms_core *c, uint32_t p, const struct route_plan *plan)
{
	struct order *pd = &c->orders.orders[p];
	int evicted;

	pd->n_children = (uint8_t)plan->n;
	for (uint32_t k = 0; k < plan->n; k++) {
		uint32_t ch = order_alloc(&c->orders, &evicted);
		struct order *cd = &c->orders.orders[ch];
		struct venue *v = &c->venues[plan->venue[k]];

		if (evicted)
			c->stats.event[OMS_EV_ORDERS_EVICTED]++;
		*cd = *pd;
		memset(cd->state_ts, 0, sizeof(cd->state_ts));
		cd->qty = plan->qty[k];
		cd->leaves_qty = plan->qty[k];
		cd->venue = (uint16_t)plan->venue[k];
		cd->ref = v->next_ref++;
		cd->is_child = 1;
		cd->n_children = 0;
		cd->parent = p;
		cd->res_qty = 0;
		cd->res_notional = 0;
		cd->res_live = 0;
		cd->live_prev = cd->live_next = ORDER_NIL;
		pd->child[k] = ch;
		ref_insert(&c->orders.by_ref, cd->ref, cd->venue, ch);
		if (plan->d && plan->venue[k] < OMS_ROUTE_SEEN)
			plan->d->seen[plan->venue[k]].ref = cd->ref;
		c->orders.live++;
		order_enter_state(c, ch, OMS_ST_PENDING_NEW);
		venue_order_sent(c, v, cd);
		send_enter_order(c, cd);
	}
}

static void on_new_order(struct oms_core *c, struct session *s,
			 const uint8_t *p)
{
	struct sp_new_order m;
	uint32_t si = (uint32_t)(s - c->sessions);
	uint32_t venue = 0, instrument = 0;
	struct risk_verdict rv;
	struct route_plan plan = {.n = 0};
	int evicted;

	memcpy(&m, p, sizeof(m));
	uint16_t rej = check_new_order(c, s, &m, &venue, &rv, &instrument, &plan);
	if (rej) {
		emit_rejected(c, s, m.cl_ord_id, rej, SP_NEW_ORDER, 0);
		return;
	}
	if (c->journal_full) {
		emit_rejected(c, s, m.cl_ord_id, SP_REJ_SYS_JOURNAL, SP_NEW_ORDER, 0);
		return;
	}
	/* a split order needs its children's slots too */
	uint32_t o = order_free_slots(&c->orders) > plan.n
			     ? order_alloc(&c->orders, &evicted) : ORDER_NIL;
	if (o == ORDER_NIL) {
		emit_rejected(c, s, m.cl_ord_id, SP_REJ_SYS_TABLE_FULL,
			      SP_NEW_ORDER, 0);
		return;
	}
	if (evicted)
		c->stats.event[OMS_EV_ORDERS_EVICTED]++;
	c->stats.event[OMS_EV_ORDERS_ACCEPTED_INTERNAL]++;

	struct order *od = &c->orders.orders[o];
	struct venue *v = &c->venues[venue];
	memset(od->state_ts, 0, sizeof(od->state_ts));
	od->cl_ord_id = m.cl_ord_id;
	od->price = m.price;
	od->pending_price = 0;
	od->session = si;
	od->account = m.account;
	od->qty = m.qty;
	od->pending_qty = 0;
	od->cum_qty = 0;
	od->leaves_qty = m.qty;
	od->ref = plan.n ? 0 : v->next_ref++; /* a split order's children take refs */
	od->pending_ref = 0;
	od->venue = (uint16_t)venue;
	od->prev_state = OMS_ST_NONE;
	od->side = m.side;
	od->ord_type = m.ord_type;
	od->tif = m.tif;
	od->flags = m.flags;
	od->acked = 0;
	od->is_child = 0;
	od->n_children = 0;
	od->parent = ORDER_NIL;
	memcpy(&od->symbol_key_, m.symbol, 8);
	od->risk_acct = rv.acct;
	od->risk_pos = rv.pos;
	od->instrument = instrument;
	od->risk_px = rv.px;
	od->res_qty = 0;
	od->res_notional = 0;
	od->res_live = 0;
	od->fill_counted = 0;
	index_insert(&c->orders.by_id, od->cl_ord_id, si, o);
	order_link_live(c, o);
	order_enter_state(c, o, OMS_ST_PENDING_NEW);
	risk_update(&c->risk, od);
	if (plan.n) {
		new_children(c, o, &plan);
		return;
	}
	if (plan.d && venue < OMS_ROUTE_SEEN)
		plan.d->seen[venue].ref = od->ref;
	ref_insert(&c->orders.by_ref, od->ref, od->venue, o);
	venue_order_sent(c, v, od);
	send_enter_order(c, od);
}

/* Common to Modify and Cancel: the order, or the reason it can't be
 * touched. */
static uint16_t find_open_order(struct oms_core *c, uint32_t si, uint64_t id,
				uint32_t *o)
{
	*o = index_find(&c->orders.by_id, id, si);
	if (*o == ORDER_NIL)
		return SP_REJ_UNKNOWN_ORDER;
	uint8_t st = c->orders.orders[*o].state;
	if (state_is_terminal(st))
		return SP_REJ_TOO_LATE;
	if (state_is_pending(st))
		return 0xffff; /* caller decides which pending states it takes */
	return 0;
}

static void on_modify(struct oms_core *c, struct session *s, const uint8_t *p)
{
	struct sp_modify m;
	uint32_t si = (uint32_t)(s - c->sessions);
	uint32_t o;

	memcpy(&m, p, sizeof(m));
	uint16_t rej = find_open_order(c, si, m.cl_ord_id, &o);
	if (rej == 0xffff)
		rej = SP_REJ_ORDER_PENDING;
	struct order *od = rej ? NULL : &c->orders.orders[o];
	if (!rej && od->n_children)
		rej = SP_REJ_SPLIT_ORDER;
	else if (!rej && od->ord_type == SP_ORD_MARKET)
		rej = SP_REJ_BAD_ORD_TYPE;
	else if (!rej && (m.new_qty == 0 || m.new_qty > OUCH_MAX_QTY ||
			  m.new_qty <= od->cum_qty))
		rej = SP_REJ_BAD_QTY;
	else if (!rej && m.new_price <= 0)
		rej = SP_REJ_BAD_PRICE;
	else if (!rej && !price_fits_ouch(m.new_price))
		rej = SP_REJ_PRICE_UNREPRESENTABLE;
	else if (!rej) {
		const struct venue *v = &c->venues[od->venue];
		const struct risk_instrument *in = &c->gen->instruments[od->instrument];
		rej = risk_check_modify(c->gen, &c->risk, &c->gen->rates[si],
					&s->throttle, c->now_ns, od,
					m.new_price, m.new_qty,
					market_ref_price(v, od->instrument, in->ref_price,
							 in->tick ? in->tick : 1),
					market_halted(v, od->instrument));
	}
	if (rej) {
		emit_rejected(c, s, m.cl_ord_id, rej, SP_MODIFY, 0);
		return;
	}
	struct venue *v = &c->venues[od->venue];
	od->prev_state = od->state;
	od->pending_price = m.new_price;
	od->pending_qty = m.new_qty;
	od->pending_ref = v->next_ref++;
	ref_insert(&c->orders.by_ref, od->pending_ref, od->venue, o);
	order_enter_state(c, o, OMS_ST_PENDING_REPLACE);
	risk_update(&c->risk, od);
	send_replace_order(c, od);
}

static void on_cancel(struct oms_core *c, struct session *s, const uint8_t *p)
{
	struct sp_cancel m;
	uint32_t si = (uint32_t)(s - c->sessions);
	uint32_t o;

	memcpy(&m, p, sizeof(m));
	uint16_t rej = find_open_order(c, si, m.cl_ord_id, &o);
	if (rej == 0xffff) {
		uint8_t st = c->orders.orders[o].state;
		/* cancel-before-ack is allowed: the venue handles messages of
		 * a port in order, so the Cancel follows the Enter */
		rej = st == OMS_ST_PENDING_NEW ? 0 : SP_REJ_ORDER_PENDING;
	}
	if (rej) {
		emit_rejected(c, s, m.cl_ord_id, rej, SP_CANCEL, 0);
		return;
	}
	order_cancel(c, o);
}

/* Cancel every cancellable order of the session with this account (or of
 * every account), in the order they were created; how many. */
uint32_t session_cancel_orders(struct oms_core *c, struct session *s,
			       int all_accounts, uint32_t account)
{
	uint32_t o = s->live_head, n = 0;

	c->bulk = 1;
	while (o != ORDER_NIL) {
		struct order *od = &c->orders.orders[o];
		uint32_t next = od->live_next;
		if ((all_accounts || od->account == account) &&
		    (od->state == OMS_ST_PENDING_NEW || od->state == OMS_ST_NEW ||
		     od->state == OMS_ST_PARTIALLY_FILLED ||
		     od->state == OMS_ST_REPLACED)) {
			order_cancel(c, o);
			n++;
		}
		o = next;
	}
	c->bulk = 0;
	return n;
}

static void on_mass_cancel(struct oms_core *c, struct session *s,
			   const uint8_t *p)
{
	struct sp_mass_cancel m;

	memcpy(&m, p, sizeof(m));
	session_cancel_orders(c, s, 0, m.account);
}

int oms_core_mass_cancel(struct oms_core *c, uint32_t session_id, uint32_t account,
			 uint64_t now_ns)
{
	struct session *s = core_session_by_id(c, session_id);

	if (!s)
		return -1;
	c->now_ns = now_ns;
	core_adopt_gen(c);
	return (int)session_cancel_orders(c, s, 0, account);
}

int oms_core_kill(struct oms_core *c, uint32_t account, int on, uint64_t now_ns)
{
	uint32_t n = 0;

	core_adopt_gen(c);
	if (account == 0) {
		/* every account's switch, and the global one for accounts
		 * configured later */
		c->risk.kill_all = on != 0;
		for (uint32_t a = 0; a < c->risk.adopted_accounts; a++)
			c->risk.accounts[a].kill = on != 0;
	} else {
		uint32_t a = risk_account_find(c->gen, account);
		if (a == RISK_NIL)
			return -1;
		c->risk.accounts[a].kill = on != 0;
	}
	if (!on)
		return 0;
	c->now_ns = now_ns;
	for (uint32_t i = 0; i < c->n_sessions; i++)
		n += session_cancel_orders(c, &c->sessions[i], account == 0, account);
	c->stats.event[OMS_EV_KILL_CANCELS] += n;
	return (int)n;
}

static const uint16_t app_len[256] = {
	[SP_NEW_ORDER] = sizeof(struct sp_new_order),
	[SP_MODIFY] = sizeof(struct sp_modify),
	[SP_CANCEL] = sizeof(struct sp_cancel),
	[SP_MASS_CANCEL] = sizeof(struct sp_mass_cancel),
};

/* Rule G: ask the strategy to resend from the next expected, unless a
 * request is already on its way. */
void session_request_gap(struct oms_core *c, struct session *s, uint32_t count)
{
	if (s->gap_req_count && c->now_ns < s->gap_req_ns + c->cfg.retransmit_ns)
		return;
	if (count > OMS_REQUEST_WINDOW)
		count = OMS_REQUEST_WINDOW;
	emit_retransmit_request(c, s, s->next_in_seq, count);
	s->gap_req_ns = c->now_ns;
	s->gap_req_count = count;
	c->stats.event[OMS_EV_SP_SEQ_GAPS]++;
	c->stats.event[OMS_EV_SP_SEQ_GAP_MSGS] += count;
	timer_at(c, c->now_ns + c->cfg.retransmit_ns);
}

/* Rule R: send held messages from..from+count-1 again, as they were. */
void session_serve_retransmit(struct oms_core *c, struct session *s, uint64_t from,
			      uint64_t count)
{
	uint64_t depth = c->cfg.replay_depth;
	uint64_t oldest = s->next_out_seq > depth + 1 ? s->next_out_seq - depth : 1;

	if (count == 0)
		return;
	if (from < oldest) {
		emit_retransmit_reject(c, s, from, (uint32_t)count, SP_RTX_TOO_OLD);
		return;
	}
	if (from >= s->next_out_seq) {
		emit_retransmit_reject(c, s, from, (uint32_t)count, SP_RTX_NOT_SENT);
		return;
	}
	uint64_t end = from + count;
	if (end > s->next_out_seq)
		end = s->next_out_seq;
	if (end > from + 1024)
		end = from + 1024;
	for (uint64_t seq = from; seq < end; seq++)
		resend_sp(c, s, seq);
}

static const uint16_t session_len[256] = {
	[SP_LOGIN] = sizeof(struct sp_login),
	[SP_LOGOUT] = sizeof(struct sp_header),
	[SP_HEARTBEAT] = sizeof(struct sp_header),
	[SP_RETRANSMIT_REQUEST] = sizeof(struct sp_retransmit_request),
};

static void on_login(struct oms_core *c, struct session *s, const uint8_t *p)
{
	struct sp_login m;

	memcpy(&m, p, sizeof(m));
	if (!s->enabled) {
		emit_login_rejected(c, s, SP_LREJ_DISABLED);
		return;
	}
	if (m.next_expected_seq > s->next_out_seq) {
		emit_login_rejected(c, s, SP_LREJ_BAD_SEQ);
		return;
	}
	s->logged_in = 1;
	c->stats.event[OMS_EV_LOGINS]++;
	emit_login_accepted(c, s);
	timer_at(c, c->now_ns);
	if (m.next_expected_seq < s->next_out_seq)
		session_serve_retransmit(c, s, m.next_expected_seq,
					 s->next_out_seq - m.next_expected_seq);
}

static void on_session_msg(struct oms_core *c, struct session *s,
			   const struct sp_header *h, const uint8_t *p)
{
	if (h->length != session_len[h->type]) {
		c->stats.drop[OMS_DROP_SP_BAD_MSG_LENGTH]++;
		return;
	}
	if (h->type == SP_LOGIN) {
		on_login(c, s, p);
		return;
	}
	if (!s->logged_in) {
		c->stats.drop[OMS_DROP_SP_NOT_LOGGED_IN]++;
		return;
	}
	switch (h->type) {
	case SP_LOGOUT:
		s->logged_in = 0;
		s->gap_req_count = 0;
		c->stats.event[OMS_EV_LOGOUTS]++;
		emit_session_msg(c, s, SP_LOGOUT);
		break;
	case SP_HEARTBEAT:
		c->stats.event[OMS_EV_HEARTBEATS_IN]++;
		/* its seq is the strategy's next: a higher one means the last
		 * messages it sent were lost */
		if (h->seq > s->next_in_seq)
			session_request_gap(c, s, (uint32_t)(h->seq - s->next_in_seq));
		break;
	default: {
		struct sp_retransmit_request m;
		memcpy(&m, p, sizeof(m));
		c->stats.event[OMS_EV_SP_RETRANSMIT_REQUESTS]++;
		session_serve_retransmit(c, s, m.from_seq, m.count);
	}
	}
}

static void on_app_msg(struct oms_core *c, struct session *s,
		       const struct sp_header *h, const uint8_t *p)
{
	if (!s->logged_in) {
		c->stats.drop[OMS_DROP_SP_NOT_LOGGED_IN]++;
		return;
	}
	if (h->seq < s->next_in_seq) {
		/* already handled once: never executed twice */
		c->stats.drop[OMS_DROP_SP_DUPLICATE_SEQ]++;
		return;
	}
	if (h->seq > s->next_in_seq) {
		/* go-back-N: handle nothing out of order; the strategy resends
		 * from the first missing message */
		c->stats.drop[OMS_DROP_SP_OUT_OF_ORDER]++;
		priority_barrier(c);
		session_request_gap(c, s, (uint32_t)(h->seq - s->next_in_seq + 1));
		return;
	}
	s->next_in_seq = h->seq + 1;
	s->gap_req_count = 0;
	c->stats.event[OMS_EV_SP_MSGS_IN]++;

	if (app_len[h->type] == 0) {
		priority_barrier(c);
		c->stats.drop[OMS_DROP_SP_UNKNOWN_TYPE]++;
		emit_session_reject(c, s, h->seq, SP_SREJ_UNKNOWN_TYPE, h->type);
		return;
	}
	if (h->length != app_len[h->type]) {
		priority_barrier(c);
		c->stats.drop[OMS_DROP_SP_BAD_MSG_LENGTH]++;
		emit_session_reject(c, s, h->seq, SP_SREJ_BAD_LENGTH, h->type);
		return;
	}

	if (c->typed) { /* executed at the end of the burst, by class */
		priority_defer(c, s, h->type, p);
		return;
	}
	strategy_execute(c, s, h->type, p);
}

void strategy_execute(struct oms_core *c, struct session *s, uint8_t type, const uint8_t *p)
{
	uint64_t t0 = stage_app_begin(c);
	switch (type) {
	case SP_NEW_ORDER:
		on_new_order(c, s, p);
		break;
	case SP_MODIFY:
		on_modify(c, s, p);
		break;
	case SP_CANCEL:
		on_cancel(c, s, p);
		break;
	default:
		on_mass_cancel(c, s, p);
		break;
	}
	stage_app_done(c, type, t0);
}

void strategy_datagram(struct oms_core *c, const struct net_udp_view *u)
{
	const uint8_t *p = u->payload;
	uint32_t left = u->payload_len;

	while (left > 0) {
		struct sp_header h;

		if (left < sizeof(h)) {
			c->stats.drop[OMS_DROP_SP_TRUNCATED]++;
			return;
		}
		memcpy(&h, p, sizeof(h));
		if (h.length < sizeof(h) || h.length > left) {
			c->stats.drop[OMS_DROP_SP_BAD_LENGTH]++;
			return;
		}
		const uint8_t *msg = p;
		p += h.length;
		left -= h.length;

		if (h.version != SP_VERSION) {
			c->stats.drop[OMS_DROP_SP_BAD_VERSION]++;
			continue;
		}
		struct session *s = core_session_by_id(c, h.session_id);
		if (!s) {
			c->stats.drop[OMS_DROP_SP_UNKNOWN_SESSION]++;
			continue;
		}
		if (u->src_ip != s->ip || u->src_port != s->port) {
			c->stats.drop[OMS_DROP_SP_WRONG_SOURCE]++;
			continue;
		}
		c->stats.sp_in[h.type]++;
		s->last_rx = c->now_ns;
		if (session_len[h.type]) {
			priority_barrier(c);
			on_session_msg(c, s, &h, msg);
		} else {
			on_app_msg(c, s, &h, msg);
		}
	}
}
