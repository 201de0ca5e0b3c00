/* Orders split across venues (docs/semantics.md "Splitting across
 * venues").  The parent is what the strategy sees and what risk accounts;
 * each child is one venue's OUCH order.  A venue message moves its child
 * silently, and the parent as if the same event had happened to it, so
 * the parent's fills, leaves, state and replies follow the ordinary
 * rules. */
#include "ouch_wire.h"
#include "pipeline.h"

int split_child_of(const struct oms_core *c, uint32_t ch, uint32_t p)
{
	const struct order *od = &c->orders.orders[ch];

	return od->is_child && od->parent == p;
}

/* Live children of p other than `except`. */
static uint32_t other_live_children(const struct oms_core *c, uint32_t p, uint32_t except)
{
	const struct order *pd = &c->orders.orders[p];
	uint32_t n = 0;

	for (uint32_t k = 0; k < pd->n_children; k++) {
		uint32_t ch = pd->child[k];
		if (ch != except && split_child_of(c, ch, p) &&
		    !state_is_terminal(c->orders.orders[ch].state))
			n++;
	}
	return n;
}

void split_cancel_children(struct oms_core *c, uint32_t p)
{
	const struct order *pd = &c->orders.orders[p];

	for (uint32_t k = 0; k < pd->n_children; k++) {
		uint32_t ch = pd->child[k];
		struct order *cd = &c->orders.orders[ch];
		if (!split_child_of(c, ch, p) || state_is_terminal(cd->state) ||
		    cd->state == OMS_ST_PENDING_CANCEL)
			continue;
		cd->prev_state = cd->state;
		order_enter_state(c, ch, OMS_ST_PENDING_CANCEL);
		send_cancel_order(c, cd);
	}
}

/* The child loses `dec` of its leaves (a venue cancel): so does the parent. */
static void child_cancel(struct oms_core *c, uint32_t ch, uint32_t dec, uint8_t reason)
{
	struct order *cd = &c->orders.orders[ch];

	if (dec > cd->leaves_qty)
		dec = cd->leaves_qty;
	cd->leaves_qty -= dec;
	if (cd->leaves_qty == 0)
		order_enter_state(c, ch, reason == SP_CXL_IOC ? OMS_ST_EXPIRED : OMS_ST_CANCELED);
	order_venue_cancel(c, cd->parent, dec, reason);
}

static void child_accepted(struct oms_core *c, uint32_t ch, const uint8_t *m)
{
	struct order *cd = &c->orders.orders[ch];
	uint32_t p = cd->parent;

	if (cd->acked || (cd->state != OMS_ST_PENDING_NEW &&
			  cd->state != OMS_ST_PENDING_CANCEL)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	cd->acked = 1;
	if (cd->state == OMS_ST_PENDING_NEW)
		order_enter_state(c, ch, OMS_ST_NEW);
	else
		cd->prev_state = OMS_ST_NEW;
	/* the first child's acceptance is the parent's */
	if (!c->orders.orders[p].acked)
		order_accept(c, p);
	if (m[OUCH_ACCEPTED_OFF_STATE] == 'D')
		child_cancel(c, ch, cd->leaves_qty, SP_CXL_VENUE);
}

static void child_executed(struct oms_core *c, uint32_t ch, const uint8_t *m)
{
	struct order *cd = &c->orders.orders[ch];
	uint32_t q = rd_be32(m + OUCH_EXECUTED_OFF_QTY);

	if (state_is_terminal(cd->state)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	if (q == 0 || q > cd->leaves_qty) {
		c->stats.drop[OMS_DROP_OUCH_OVERFILL]++;
		return;
	}
	cd->cum_qty += q;
	cd->leaves_qty -= q;
	if (cd->leaves_qty == 0)
		order_enter_state(c, ch, OMS_ST_FILLED);
	else if (cd->state == OMS_ST_NEW || cd->state == OMS_ST_PARTIALLY_FILLED)
		order_enter_state(c, ch, OMS_ST_PARTIALLY_FILLED);
	else if (cd->prev_state == OMS_ST_NEW)
		cd->prev_state = OMS_ST_PARTIALLY_FILLED;
	order_execute(c, cd->parent, q,
		      (int64_t)(rd_be64(m + OUCH_EXECUTED_OFF_PRICE) * 10000u),
		      rd_be64(m + OUCH_EXECUTED_OFF_MATCH));
}

static void child_canceled(struct oms_core *c, uint32_t ch, const uint8_t *m)
{
	uint8_t r = m[OUCH_CANCELED_OFF_REASON];

	if (state_is_terminal(c->orders.orders[ch].state)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	child_cancel(c, ch, rd_be32(m + OUCH_CANCELED_OFF_QTY),
		     r == 'I' ? SP_CXL_IOC : r == 'U' ? SP_CXL_USER : SP_CXL_VENUE);
}

/* A venue refused a child: the parent is rejected when nothing else of it
 * was or can be accepted, else it loses the child's quantity as by a
 * venue cancel. */
static void child_rejected(struct oms_core *c, uint32_t ch, const uint8_t *m)
{
	struct order *cd = &c->orders.orders[ch];
	uint32_t p = cd->parent;
	struct order *pd = &c->orders.orders[p];
	uint8_t code = (uint8_t)rd_be16(m + OUCH_REJECTED_OFF_REASON);

	if (cd->state != OMS_ST_PENDING_NEW &&
	    !(cd->state == OMS_ST_PENDING_CANCEL && !cd->acked)) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	uint32_t leaves = cd->leaves_qty;
	order_enter_state(c, ch, OMS_ST_REJECTED);
	if (!pd->acked && pd->cum_qty == 0 && other_live_children(c, p, ch) == 0) {
		order_enter_state(c, p, OMS_ST_REJECTED);
		risk_update(&c->risk, pd);
		emit_rejected(c, &c->sessions[pd->session], pd->cl_ord_id,
			      SP_REJ_VENUE_REJECTED, SP_NEW_ORDER, code);
		return;
	}
	order_venue_cancel(c, p, leaves, SP_CXL_VENUE);
}

static void child_cancel_rejected(struct oms_core *c, uint32_t ch)
{
	struct order *cd = &c->orders.orders[ch];
	uint32_t p = cd->parent;
	struct order *pd = &c->orders.orders[p];

	if (cd->state != OMS_ST_PENDING_CANCEL) {
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		return;
	}
	order_enter_state(c, ch, cd->prev_state);
	if (pd->state != OMS_ST_PENDING_CANCEL)
		return; /* the parent's cancel was answered already */
	order_enter_state(c, p, pd->prev_state);
	emit_rejected(c, &c->sessions[pd->session], pd->cl_ord_id,
		      SP_REJ_VENUE_REJECTED, SP_CANCEL, 0);
}

void split_child_answer(struct oms_core *c, uint32_t ch, uint8_t t, const uint8_t *m)
{
	switch (t) {
	case 'A':
		child_accepted(c, ch, m);
		break;
	case 'E':
		child_executed(c, ch, m);
		break;
	case 'C':
		child_canceled(c, ch, m);
		break;
	case 'J':
		child_rejected(c, ch, m);
		break;
	case 'I':
		child_cancel_rejected(c, ch);
		break;
	default: /* 'U': a child is never replaced */
		c->stats.drop[OMS_DROP_OUCH_UNEXPECTED]++;
		break;
	}
}
