/* Functions the pipeline stages share: strategy.c (strategy protocol in),
 * venue.c (OUCH in), encode.c (everything out), state.c (order state). */
#ifndef OMS_PIPELINE_H
#define OMS_PIPELINE_H

#include <stdint.h>

#include "core_internal.h"
#include "net.h"

/* core.c */
struct session *core_session_by_id(const struct oms_core *c, uint32_t id);
/* The instrument index of a symbol, or RISK_NIL when not configured. */
void core_adopt_gen(struct oms_core *c);
/* The next transmit slot, or NULL (TX_FULL counted) when the area is full. */
uint8_t *core_tx_frame(struct oms_core *c);
void core_tx_commit(struct oms_core *c, uint32_t len);

/* strategy.c, venue.c */
void strategy_datagram(struct oms_core *c, const struct net_udp_view *u);
/* One application message that passed the session layer, handled now. */
void strategy_execute(struct oms_core *c, struct session *s, uint8_t type, const uint8_t *p);

/* priority.c: typed mode's execution by class (docs/semantics.md
 * "Priority classes") - messages deferred to the end of the burst, the
 * high class first. */
void priority_defer(struct oms_core *c, struct session *s, uint8_t type, const uint8_t *p);
void priority_drain(struct oms_core *c);
/* Anything but a strategy application message ends a run: what waits
 * runs first, so only application messages are ever reordered. */
static inline void priority_barrier(struct oms_core *c)
{
	if (c->prio.n_high | c->prio.n_normal)
		priority_drain(c);
}
void venue_packet(struct oms_core *c, const struct net_udp_view *u);
void venue_request(struct oms_core *c, const struct net_udp_view *u);
struct venue *venue_by_ip(const struct oms_core *c, uint32_t ip);

/* prefetch.c: fetch what a burst's frames will look up before handling
 * the first of them, OMS_PREFETCH_BURST frames at a time */
enum { OMS_PREFETCH_BURST = 32 };
void burst_prefetch(const struct oms_core *c, const struct net_udp_view *u, const int *r,
		    uint32_t n);

/* timers.c */
void run_timers(struct oms_core *c);
uint64_t compute_deadline(const struct oms_core *c);
/* A timer may now be due at `t`: make sure it runs. */
static inline void timer_at(struct oms_core *c, uint64_t t)
{
	if (t < c->next_timer)
		c->next_timer = t;
}

/* A gap request asks for at most this many messages: under reordering a
 * larger resend only breaks up again (go-back-N); the rest is asked for
 * once these have arrived. */
#define OMS_REQUEST_WINDOW 64

/* session layer (strategy.c): rule G, rule R */
void session_request_gap(struct oms_core *c, struct session *s, uint32_t count);
void session_serve_retransmit(struct oms_core *c, struct session *s, uint64_t from,
			      uint64_t count);
/* MassCancel's walk (strategy.c): cancel every cancellable order of the
 * session - of `account`, or of every account when `all_accounts` - in
 * creation order; how many. */
uint32_t session_cancel_orders(struct oms_core *c, struct session *s,
			       int all_accounts, uint32_t account);
/* venue side (venue.c): rule VG */
void venue_request_gap(struct oms_core *c, struct venue *v, uint64_t count);

/* router.c: market data, venue health, the smart order router */
int market_halted(const struct venue *v, uint32_t instrument);
int64_t market_ref_price(const struct venue *v, uint32_t instrument,
			 int64_t cfg_ref, int64_t tick);
int venue_unresponsive(const struct venue *v);
void venue_order_sent(struct oms_core *c, struct venue *v, struct order *od);
void venue_order_answered(struct oms_core *c, struct venue *v, struct order *od);
/* How a NewOrder is split across venues: n children (0: not split), venue
 * indices best first, and their quantities. */
struct route_plan {
	uint32_t n;
	uint32_t venue[OMS_SPLIT_MAX];
	uint32_t qty[OMS_SPLIT_MAX];
	/* the router's decision in the ring (NULL: the order was not routed
	 * by it), where the order's UserRefNums are noted once issued */
	struct oms_route_decision *d;
};
/* The venue index the router picks for a NewOrder (RISK_NIL: none) and
 * the split, if any; the decision written to the ring. */
uint32_t router_choose(struct oms_core *c, const struct session *s,
		       const struct sp_new_order *m, uint32_t instrument,
		       uint64_t exclude, struct route_plan *plan);
/* An order's outcome for the venue's recent fill ratio (router.c). */
void venue_fill_outcome(struct venue *v, struct order *od, int filled);
/* fill_model.c: the rule router's candidates in `d` scored by expected
 * value with the generation's fill model (each candidate's in ev[], by
 * venue index); the venue index chosen, or `rule_best` when the model
 * cannot answer for every candidate. */
uint32_t fill_route_choose(struct oms_core *c, const struct sp_new_order *m,
			   uint32_t instrument, struct oms_route_decision *d,
			   uint32_t rule_best, int64_t *ev);

/* state.c */
void order_enter_state(struct oms_core *c, uint32_t o, uint8_t state);
void order_link_live(struct oms_core *c, uint32_t o);
/* The strategy's Cancel, also used by MassCancel: state PendingCancel and
 * a Cancel Order to the venue (to each live child of a split order). */
void order_cancel(struct oms_core *c, uint32_t o);

/* venue.c: what a venue message does to an order once it passed its
 * checks (a split order's parent is moved by its children this way) */
void order_accept(struct oms_core *c, uint32_t o);
void order_execute(struct oms_core *c, uint32_t o, uint32_t q, int64_t px,
		   uint64_t match);
void order_venue_cancel(struct oms_core *c, uint32_t o, uint32_t dec, uint8_t reason);

/* split.c: orders split across venues */
/* Is orders[ch] (still) a child of orders[p]? */
int split_child_of(const struct oms_core *c, uint32_t ch, uint32_t p);
/* A venue message about a child (t: OUCH type). */
void split_child_answer(struct oms_core *c, uint32_t ch, uint8_t t, const uint8_t *m);
/* Cancel every live child not already pending cancel. */
void split_cancel_children(struct oms_core *c, uint32_t p);

/* encode.c: session layer out */
void emit_session_msg(struct oms_core *c, struct session *s, uint8_t type);
void emit_retransmit_request(struct oms_core *c, struct session *s, uint64_t from,
			     uint32_t count);
void emit_retransmit_reject(struct oms_core *c, struct session *s, uint64_t from,
			    uint32_t count, uint8_t reason);
/* the held message with this seq, sent again as it was */
void resend_sp(struct oms_core *c, struct session *s, uint64_t seq);
void send_venue_heartbeat(struct oms_core *c, struct venue *v);
void send_venue_request(struct oms_core *c, struct venue *v, uint64_t from,
			uint16_t count);
void resend_venue(struct oms_core *c, struct venue *v, uint64_t seq);

/* encode.c: strategy protocol out */
void emit_login_accepted(struct oms_core *c, struct session *s);
void emit_login_rejected(struct oms_core *c, struct session *s,
			 uint8_t reason);
void emit_session_reject(struct oms_core *c, struct session *s,
			 uint64_t ref_seq, uint8_t reason, uint8_t ref_type);
void emit_rejected(struct oms_core *c, struct session *s, uint64_t cl_ord_id,
		   uint16_t reason, uint8_t ref_type, uint8_t venue_code);
void emit_accepted(struct oms_core *c, const struct order *o);
void emit_replaced(struct oms_core *c, const struct order *o);
void emit_canceled(struct oms_core *c, const struct order *o,
		   uint32_t canceled_qty, uint8_t reason);
void emit_fill(struct oms_core *c, const struct order *o, uint32_t last_qty,
	       int64_t last_price, uint64_t match_number);

/* encode.c: OUCH out */
void send_enter_order(struct oms_core *c, const struct order *o);
void send_replace_order(struct oms_core *c, const struct order *o);
void send_cancel_order(struct oms_core *c, const struct order *o);

#endif
