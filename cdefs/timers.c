/* Timers of the session layer: heartbeats out, timeouts, re-sent gap
 * requests (docs/semantics.md, "Time").  They run on the now_ns of the call
 * that brings them due; the core reads no clock. */
#include "pipeline.h"

static void session_timers(struct oms_core *c, struct session *s)
{
	uint64_t now = c->now_ns;

	if (!s->logged_in)
		return;
	if (now >= s->last_rx + s->timeout_ns) {
		/* the strategy is gone: with cancel-on-disconnect, so are its
		 * orders (every account's, as MassCancel) */
		s->logged_in = 0;
		s->gap_req_count = 0;
		c->stats.event[OMS_EV_SESSION_TIMEOUTS]++;
		if (s->cancel_on_disconnect)
			c->stats.event[OMS_EV_CANCEL_ON_DISCONNECT] +=
				session_cancel_orders(c, s, 1, 0);
		return;
	}
	if (s->gap_req_count && now >= s->gap_req_ns + c->cfg.retransmit_ns) {
		emit_retransmit_request(c, s, s->next_in_seq, s->gap_req_count);
		s->gap_req_ns = now;
		c->stats.event[OMS_EV_SP_SEQ_GAPS]++;
	}
	if (now >= s->last_tx + s->heartbeat_ns) {
		emit_session_msg(c, s, SP_HEARTBEAT);
		c->stats.event[OMS_EV_HEARTBEATS_OUT]++;
	}
}

static void venue_timers(struct oms_core *c, struct venue *v)
{
	uint64_t now = c->now_ns;

	if (!v->down && now >= v->last_rx + v->timeout_ns) {
		v->down = 1;
		c->stats.event[OMS_EV_VENUE_TIMEOUTS]++;
	}
	if (v->gap_req_count && now >= v->gap_req_ns + c->cfg.retransmit_ns) {
		send_venue_request(c, v, v->next_in_seq, (uint16_t)v->gap_req_count);
		v->gap_req_ns = now;
		c->stats.event[OMS_EV_VENUE_SEQ_GAPS]++;
	}
	if (now >= v->last_tx + v->heartbeat_ns) {
		send_venue_heartbeat(c, v);
		c->stats.event[OMS_EV_VENUE_HEARTBEATS_OUT]++;
		/* after a break, a hello asks the venue where it is */
		if (v->down)
			send_venue_request(c, v, v->next_in_seq, 0);
	}
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t compute_deadline(const struct oms_core *c)
{
	uint64_t t = UINT64_MAX;

	for (uint32_t i = 0; i < c->n_sessions; i++) {
		const struct session *s = &c->sessions[i];
		if (!s->logged_in)
			continue;
		t = min64(t, s->last_rx + s->timeout_ns);
		t = min64(t, s->last_tx + s->heartbeat_ns);
		if (s->gap_req_count)
			t = min64(t, s->gap_req_ns + c->cfg.retransmit_ns);
	}
	if (!c->timers_started)
		return t;
	for (uint32_t i = 0; i < c->n_venues; i++) {
		const struct venue *v = &c->venues[i];
		if (!v->down)
			t = min64(t, v->last_rx + v->timeout_ns);
		t = min64(t, v->last_tx + v->heartbeat_ns);
		if (v->gap_req_count)
			t = min64(t, v->gap_req_ns + c->cfg.retransmit_ns);
	}
	return t;
}

void run_timers(struct oms_core *c)
{
	if (!c->timers_started) {
		c->timers_started = 1;
		for (uint32_t i = 0; i < c->n_venues; i++) {
			c->venues[i].last_rx = c->now_ns;
			c->venues[i].last_tx = c->now_ns;
		}
	}
	for (uint32_t i = 0; i < c->n_sessions; i++)
		session_timers(c, &c->sessions[i]);
	for (uint32_t i = 0; i < c->n_venues; i++)
		venue_timers(c, &c->venues[i]);
	c->next_timer = compute_deadline(c);
}

uint64_t oms_core_next_deadline(const struct oms_core *c)
{
	return compute_deadline(c);
}

int oms_core_timer_due(const struct oms_core *c, uint64_t now_ns)
{
	/* next_timer is a lower bound of the deadline: at worst a due check
	 * finds nothing to do and recomputes it */
	return !c->timers_started || now_ns >= c->next_timer;
}
