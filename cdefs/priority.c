/* Typed mode's execution by priority class (docs/semantics.md "Priority
 * classes").  The session layer still runs message by message in arrival
 * order - sequence numbers, duplicates and gaps are decided exactly as in
 * run-to-completion - but an application message that passes it waits here
 * until the end of the burst.  Then the high class (Cancel, MassCancel,
 * NewOrder flagged PRIORITY) runs first, the normal class (NewOrder,
 * Modify) after; each in arrival order, so within a class and a session
 * nothing is reordered.  A Cancel or MassCancel that names a NewOrder still
 * waiting in the normal class takes it back: it never reaches the venue
 * and the strategy gets Canceled. */
#include <string.h>

#include "pipeline.h"

void oms_core_set_typed(struct oms_core *c, int on)
{
	c->typed = on != 0;
}

static int is_high(uint8_t type, const uint8_t *p)
{
	if (type == SP_CANCEL || type == SP_MASS_CANCEL)
		return 1;
	return type == SP_NEW_ORDER &&
	       (p[offsetof(struct sp_new_order, flags)] & SP_FLAG_PRIORITY);
}

/* a queued NewOrder's fields, read as the core reads wire messages: with
 * memcpy, since a message in a frame has no alignment */
static uint64_t queued_id(const struct deferred_msg *d)
{
	uint64_t v;
	memcpy(&v, d->msg + offsetof(struct sp_new_order, cl_ord_id), sizeof(v));
	return v;
}

static uint32_t queued_account(const struct deferred_msg *d)
{
	uint32_t v;
	memcpy(&v, d->msg + offsetof(struct sp_new_order, account), sizeof(v));
	return v;
}

void priority_defer(struct oms_core *c, struct session *s, uint8_t type, const uint8_t *p)
{
	struct priority_queues *q = &c->prio;

	/* a full class is not a reason to lose anything: run what waits
	 * (the bypass then spans this part of the burst only) */
	if (q->n_high == PRIORITY_QUEUE || q->n_normal == PRIORITY_QUEUE)
		priority_drain(c);
	int high = is_high(type, p);
	struct deferred_msg *d = high ? &q->high[q->n_high++] : &q->normal[q->n_normal++];
	d->msg = p;
	d->session = (uint32_t)(s - c->sessions);
	d->normal_before = q->n_normal;
	d->type = type;
	d->voided = 0;
}

/* A NewOrder taken back before it ran: Canceled, all of it, and nothing
 * else - it never entered the order table and never went to a venue. */
static void take_back(struct oms_core *c, struct deferred_msg *d)
{
	struct sp_new_order m;
	struct order o;

	memcpy(&m, d->msg, sizeof(m));
	memset(&o, 0, sizeof(o));
	o.session = d->session;
	o.cl_ord_id = m.cl_ord_id;
	d->voided = 1;
	emit_canceled(c, &o, m.qty, SP_CXL_USER);
	c->stats.event[OMS_EV_QUEUED_CANCELS]++;
}

/* A Cancel whose order the table does not hold yet may name a NewOrder
 * of its session that arrived before it and waits (the first such). */
static int cancel_queued(struct oms_core *c, const struct deferred_msg *h)
{
	struct priority_queues *q = &c->prio;
	struct sp_cancel m;

	memcpy(&m, h->msg, sizeof(m));
	if (index_find(&c->orders.by_id, m.cl_ord_id, h->session) != ORDER_NIL)
		return 0; /* the table's order is the one it names */
	for (uint32_t i = 0; i < h->normal_before; i++) {
		struct deferred_msg *d = &q->normal[i];
		if (!d->voided && d->type == SP_NEW_ORDER && d->session == h->session &&
		    queued_id(d) == m.cl_ord_id) {
			take_back(c, d);
			return 1;
		}
	}
	return 0;
}

/* After the table's orders, a MassCancel takes back the queued NewOrders
 * of its session and account that arrived before it, in arrival order -
 * the order run-to-completion would have created and canceled them in. */
static void mass_cancel_queued(struct oms_core *c, const struct deferred_msg *h)
{
	struct priority_queues *q = &c->prio;
	struct sp_mass_cancel m;

	memcpy(&m, h->msg, sizeof(m));
	/* as the table's orders: a Canceled each, never cut short by the
	 * transmit area (the queue holds fewer than the table) */
	c->bulk = 1;
	for (uint32_t i = 0; i < h->normal_before; i++) {
		struct deferred_msg *d = &q->normal[i];
		if (!d->voided && d->type == SP_NEW_ORDER && d->session == h->session &&
		    queued_account(d) == m.account)
			take_back(c, d);
	}
	c->bulk = 0;
}

void priority_drain(struct oms_core *c)
{
	struct priority_queues *q = &c->prio;

	for (uint32_t i = 0; i < q->n_high; i++) {
		struct deferred_msg *h = &q->high[i];
		struct session *s = &c->sessions[h->session];
		if (h->type == SP_CANCEL && cancel_queued(c, h))
			continue;
		strategy_execute(c, s, h->type, h->msg);
		if (h->type == SP_MASS_CANCEL)
			mass_cancel_queued(c, h);
	}
	for (uint32_t i = 0; i < q->n_normal; i++) {
		struct deferred_msg *d = &q->normal[i];
		if (!d->voided)
			strategy_execute(c, &c->sessions[d->session], d->type, d->msg);
	}
	q->n_high = 0;
	q->n_normal = 0;
}
