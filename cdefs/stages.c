/* The read side of a core's observability (cdefs/stages.h) and the set-up
 * of what recording needs (stage_obs_init, called by oms_core_create). */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "stages_obs.h"

int stage_obs_init(struct oms_core *c)
{
	struct core_obs *o = &c->obs;
	size_t rtt = (size_t)c->cfg.max_venues * sizeof(struct lat_hist);

	/* one pending entry per transmit slot: a burst of more messages than
	 * that either overflowed the transmit area too (TX_FULL) or was mostly
	 * messages that send nothing (MassCancels matching no order); the
	 * messages beyond it are counted in stage_unrecorded */
	o->pending_cap = c->cfg.tx_capacity + c->cfg.order_capacity;
	o->pending = alloc_lines((size_t)o->pending_cap * sizeof(*o->pending));
	o->venue_rtt = alloc_lines(rtt);
	o->routed = calloc(c->cfg.max_venues, sizeof(uint64_t));
	if (!o->pending || !o->venue_rtt || !o->routed)
		return -1;
	memset(o->venue_rtt, 0, rtt);
	return 0;
}

void stage_obs_free(struct oms_core *c)
{
	free(c->obs.pending);
	free(c->obs.venue_rtt);
	free(c->obs.routed);
}

const struct lat_hist *oms_core_stage(const struct oms_core *c, int stage)
{
	if (stage < 0 || stage >= OMS_STAGE_MAX)
		return NULL;
	/* the handler's own time has always been recorded in c->lat */
	return stage == OMS_STAGE_HANDLE ? &c->lat : &c->obs.stage[stage];
}

const struct lat_hist *oms_core_venue_rtt(const struct oms_core *c, uint32_t index)
{
	return index < c->n_venues ? &c->obs.venue_rtt[index] : NULL;
}

uint64_t oms_core_venue_routed(const struct oms_core *c, uint32_t index)
{
	return index < c->n_venues ? c->obs.routed[index] : 0;
}

const struct oms_order_counts *oms_core_order_counts(const struct oms_core *c)
{
	return &c->obs.counts;
}

int oms_core_session_health(const struct oms_core *c, uint32_t index,
			    struct oms_session_health *out)
{
	if (index >= c->n_sessions)
		return -1;
	const struct session *s = &c->sessions[index];
	memset(out, 0, sizeof(*out));
	out->id = s->id;
	out->logged_in = s->logged_in;
	out->enabled = s->enabled;
	out->next_in_seq = s->next_in_seq;
	out->next_out_seq = s->next_out_seq;
	out->last_rx_ns = s->last_rx;
	out->last_tx_ns = s->last_tx;
	out->gap_requests_outstanding = s->gap_req_count;
	return 0;
}

int oms_core_venue_health(const struct oms_core *c, uint32_t index,
			  struct oms_venue_health *out)
{
	if (index >= c->n_venues)
		return -1;
	const struct venue *v = &c->venues[index];
	memset(out, 0, sizeof(*out));
	out->id = v->id;
	out->down = v->down;
	out->next_in_seq = v->next_in_seq;
	out->next_out_seq = v->next_out_seq;
	out->last_rx_ns = v->last_rx;
	out->last_tx_ns = v->last_tx;
	out->gap_requests_outstanding = v->gap_req_count;
	out->next_ref = v->next_ref;
	return 0;
}

int oms_core_order_by_ref(const struct oms_core *c, uint16_t venue_id, uint32_t ref,
			  struct oms_order_view *out)
{
	uint16_t vix = c->venue_by_id[venue_id];

	if (vix == 0)
		return -1;
	uint32_t o = ref_find(&c->orders.by_ref, ref, vix - 1u);
	if (o == ORDER_NIL)
		return -1;
	const struct order *od = &c->orders.orders[o];
	return oms_core_order_find(c, c->sessions[od->session].id, od->cl_ord_id, out);
}
