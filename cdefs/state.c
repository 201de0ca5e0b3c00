/* Order state transitions and the per-session list of live orders. */
#include "pipeline.h"

void order_link_live(struct oms_core *c, uint32_t o)
{
	struct order *od = &c->orders.orders[o];
	struct session *s = &c->sessions[od->session];

	od->live_prev = s->live_tail;
	od->live_next = ORDER_NIL;
	if (s->live_tail != ORDER_NIL)
		c->orders.orders[s->live_tail].live_next = o;
	else
		s->live_head = o;
	s->live_tail = o;
	c->orders.live++;
}

static void order_unlink_live(struct oms_core *c, uint32_t o)
{
	struct order *od = &c->orders.orders[o];
	struct session *s = &c->sessions[od->session];

	if (od->live_prev != ORDER_NIL)
		c->orders.orders[od->live_prev].live_next = od->live_next;
	else
		s->live_head = od->live_next;
	if (od->live_next != ORDER_NIL)
		c->orders.orders[od->live_next].live_prev = od->live_prev;
	else
		s->live_tail = od->live_prev;
	c->orders.live--;
}

void order_enter_state(struct oms_core *c, uint32_t o, uint8_t state)
{
	struct order *od = &c->orders.orders[o];

	od->state = state;
	od->state_ts[state] = c->now_ns;
	if (state_is_terminal(state)) {
		/* children are on no session's list: cancels reach them
		 * through their parent */
		if (od->is_child)
			c->orders.live--;
		else
			order_unlink_live(c, o);
		order_retire(&c->orders, o);
	}
}

void order_cancel(struct oms_core *c, uint32_t o)
{
	struct order *od = &c->orders.orders[o];

	od->prev_state = od->state;
	order_enter_state(c, o, OMS_ST_PENDING_CANCEL);
	if (od->n_children)
		split_cancel_children(c, o);
	else
		send_cancel_order(c, od);
}
