/* Recording into a core's stage histograms (cdefs/stages.h): called from
 * the pipeline at the few points a stage begins or ends.  TSC reads happen
 * only while timing is on, and their values go nowhere but the histograms. */
#ifndef OMS_STAGES_RECORD_H
#define OMS_STAGES_RECORD_H

#include "core_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t stage_cycles(void)
{
	return __rdtsc();
}
#else
static inline uint64_t stage_cycles(void)
{
	return 0;
}
#endif

/* oms_core_process_burst: a burst of n frames was handed over now (a
 * timer-only call, n = 0, handles no order). */
static inline void stage_burst_begin(struct oms_core *c, uint32_t n)
{
	if (c->timing && n)
		c->obs.rx_tsc = stage_cycles();
}

/* An application message's handling begins: its start time (cycles, 0
 * when timing is off). */
static inline uint64_t stage_app_begin(struct oms_core *c)
{
	c->obs.msg_rejected = 0;
	return c->timing ? stage_cycles() : 0;
}

/* An application message of `type` has been handled (its outputs, if any,
 * are in the transmit area); its handling began at t0 (cycles, 0 when
 * timing is off).  Its transmit stages are finished by stage_tx_done. */
static inline void stage_app_done(struct oms_core *c, uint8_t type, uint64_t t0)
{
	struct core_obs *o = &c->obs;

	uint32_t ix = (type - 0x10) & (OMS_APP_TYPES - 1);
	o->counts.handled[ix]++;
	if (!o->msg_rejected)
		o->counts.accepted[ix]++;
	if (!c->timing)
		return;
	uint64_t t = stage_cycles();
	if (o->n_pending < o->pending_cap) {
		/* its stages are recorded with its transmit stages, in
		 * stage_tx_done's one loop a burst: two histograms updated
		 * here, between one message's handling and the next's, made
		 * the timing's overhead an eighth larger (bench/obs_bench.c) */
		struct stage_pending *p = &o->pending[o->n_pending++];
		p->rx = o->rx_tsc;
		p->begin = t0;
		p->decided = t;
	} else {
		lat_record(&c->lat, t - t0); /* the HANDLE stage (oms_core_stage) */
		lat_record(&o->stage[OMS_STAGE_RX_TO_DECISION], t - o->rx_tsc);
		o->counts.stage_unrecorded++;
	}
}

/* oms_core_tx_clear: the backend has taken (sent) the frames.  Each
 * message's stages are recorded now, its handling and RX to decision with
 * its transmit stages.  Messages of one burst share its receive time, so
 * their IN_TO_OUT is one value, recorded once with their number. */
static inline void stage_tx_done(struct oms_core *c)
{
	struct core_obs *o = &c->obs;

	if (!o->n_pending)
		return;
	uint64_t t = stage_cycles();
	uint64_t run_rx = o->pending[0].rx, run_n = 0;
	for (uint32_t i = 0; i < o->n_pending; i++) {
		const struct stage_pending *p = &o->pending[i];
		lat_record(&c->lat, p->decided - p->begin); /* HANDLE (oms_core_stage) */
		lat_record(&o->stage[OMS_STAGE_RX_TO_DECISION], p->decided - p->rx);
		lat_record(&o->stage[OMS_STAGE_DECISION_TO_TX], t - p->decided);
		if (p->rx != run_rx) {
			lat_record_n(&o->stage[OMS_STAGE_IN_TO_OUT], t - run_rx, run_n);
			run_rx = p->rx;
			run_n = 0;
		}
		run_n++;
	}
	lat_record_n(&o->stage[OMS_STAGE_IN_TO_OUT], t - run_rx, run_n);
	o->n_pending = 0;
}

/* A Rejected to a strategy (emit_rejected). */
static inline void stage_rejected(struct oms_core *c, uint8_t ref_type, uint16_t reason)
{
	uint32_t slot = reason >= 1000 ? OMS_REJ_BUSINESS_SLOTS + (reason - 1000u) % OMS_REJ_SYSTEM_SLOTS
				       : reason % OMS_REJ_BUSINESS_SLOTS;
	c->obs.counts.rejected[(ref_type - 0x10) & (OMS_APP_TYPES - 1)][slot]++;
	c->obs.msg_rejected = 1; /* (outside a message's handling: unused) */
}

/* An Enter Order went to venue index `v`. */
static inline void stage_routed(struct oms_core *c, uint16_t v)
{
	c->obs.routed[v]++;
}

/* OUCH message `t` about order `o` from its venue, before it is applied:
 * the venue round trip when it answers the order's pending request (an
 * unexpected answer, which the handler drops, records nothing). */
static inline void stage_venue_answer(struct oms_core *c, uint32_t o, uint8_t t, uint32_t ref)
{
	if (!c->timing)
		return;
	const struct order *od = &c->orders.orders[o];
	uint8_t since;

	switch (od->state) {
	case OMS_ST_PENDING_NEW:
		if (t != 'A' && t != 'J')
			return;
		since = OMS_ST_PENDING_NEW;
		break;
	case OMS_ST_PENDING_REPLACE:
		if ((t != 'U' && t != 'J') || ref != od->pending_ref)
			return;
		since = OMS_ST_PENDING_REPLACE;
		break;
	case OMS_ST_PENDING_CANCEL:
		if (!od->acked && (t == 'A' || t == 'J'))
			since = OMS_ST_PENDING_NEW; /* the Enter's answer */
		else if (t == 'C' || t == 'I')
			since = OMS_ST_PENDING_CANCEL;
		else
			return;
		break;
	default:
		return;
	}
	lat_record(&c->obs.venue_rtt[od->venue], c->now_ns - od->state_ts[since]);
}

#endif
