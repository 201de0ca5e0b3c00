/* Set-up and tear-down of the core, the tables the control plane fills, the
 * per-burst entry point and the read-side API.  The per-message work is in
 * strategy.c (strategy protocol) and venue.c (OUCH). */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "net.h"
#include "pipeline.h"
#include "stages_obs.h"
#include "stages_record.h"

#define OMS_NAME(n) #n,
static const char *const drop_names[] = {"OK", OMS_DROP_LIST(OMS_NAME)};
static const char *const event_names[] = {OMS_EVENT_LIST(OMS_NAME)};

const char *oms_drop_name(int reason)
{
	if (reason < 0 || reason >= OMS_DROP_MAX)
		return NULL;
	return drop_names[reason];
}

const char *oms_event_name(int event)
{
	if (event < 0 || event >= OMS_EV_MAX)
		return NULL;
	return event_names[event];
}

struct oms_core *oms_core_create(const struct oms_core_config *cfg)
{
	struct oms_core *c;

	if (cfg->order_capacity == 0 || cfg->max_sessions == 0 ||
	    cfg->max_venues == 0 || cfg->max_venues > 65535 ||
	    cfg->tx_capacity == 0 ||
	    (cfg->replay_depth & (cfg->replay_depth - 1)) != 0)
		return NULL;
	c = alloc_lines(sizeof(*c));
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	if (c->cfg.ouch_capacity == 0)
		c->cfg.ouch_capacity = 'A';
	if (c->cfg.replay_depth == 0)
		c->cfg.replay_depth = 4096;
	if (c->cfg.venue_request_port == 0)
		c->cfg.venue_request_port = (uint16_t)(cfg->venue_port + 1);
	if (c->cfg.retransmit_ns == 0)
		c->cfg.retransmit_ns = 50000000;
	c->replay_mask = c->cfg.replay_depth - 1;
	/* generation 0: nothing configured until the first publish */
	c->next_timer = UINT64_MAX;

	if (c->cfg.max_accounts == 0)
		c->cfg.max_accounts = 1024;
	if (c->cfg.max_positions == 0)
		c->cfg.max_positions = 16384;
	if (c->cfg.max_instruments == 0)
		c->cfg.max_instruments = 1;
	c->session_mask = pow2_at_least(cfg->max_sessions * 2) - 1;
	c->sessions = alloc_lines(cfg->max_sessions * sizeof(struct session));
	c->session_ix = calloc(c->session_mask + 1, sizeof(uint32_t));
	c->venues = alloc_lines(cfg->max_venues * sizeof(struct venue));
	c->venue_by_id = calloc(65536, sizeof(uint16_t));
	size_t tx_slots = (size_t)cfg->tx_capacity + cfg->order_capacity;
	c->tx_buf = alloc_lines(tx_slots * OMS_TX_SLOT);
	c->tx_lens = calloc(tx_slots, sizeof(uint16_t));
	c->route_ring = alloc_lines(OMS_ROUTE_RING * sizeof(struct oms_route_decision));
	if (!c->sessions || !c->session_ix || !c->venues || !c->venue_by_id ||
	    !c->tx_buf || !c->tx_lens || !c->route_ring ||
	    order_table_init(&c->orders, cfg->order_capacity) ||
	    !(c->published = oms_gen_create(c, NULL)) ||
	    risk_state_init(&c->risk, c->cfg.max_accounts,
			    c->published->pos_mask + 1) ||
	    stage_obs_init(c)) {
		oms_core_destroy(c);
		return NULL;
	}
	memset(c->sessions, 0, cfg->max_sessions * sizeof(struct session));
	memset(c->venues, 0, cfg->max_venues * sizeof(struct venue));
	memset(c->tx_buf, 0, tx_slots * OMS_TX_SLOT);
	memset(c->route_ring, 0, OMS_ROUTE_RING * sizeof(struct oms_route_decision));
	c->published->number = 0;
	c->gen = c->published;
	return c;
}

void oms_core_destroy(struct oms_core *c)
{
	if (!c)
		return;
	order_table_free(&c->orders);
	risk_state_free(&c->risk);
	oms_gen_free(c->published);
	stage_obs_free(c);
	for (uint32_t i = 0; c->sessions && i < c->n_sessions; i++)
		free(c->sessions[i].replay);
	for (uint32_t i = 0; c->venues && i < c->n_venues; i++)
		free(c->venues[i].replay);
	free(c->sessions);
	free(c->session_ix);
	free(c->venues);
	free(c->venue_by_id);
	free(c->tx_buf);
	free(c->tx_lens);
	free(c->route_ring);
	free(c);
}

struct session *core_session_by_id(const struct oms_core *c, uint32_t id)
{
	uint32_t i = id_hash(id) & c->session_mask;

	for (;;) {
		uint32_t s = c->session_ix[i];
		if (s == 0)
			return NULL;
		if (c->sessions[s - 1].id == id)
			return &c->sessions[s - 1];
		i = (i + 1) & c->session_mask;
	}
}

int oms_core_add_session(struct oms_core *c, const struct oms_session_config *s)
{
	if (c->n_sessions >= c->cfg.max_sessions || core_session_by_id(c, s->id))
		return -1;
	struct session *ss = &c->sessions[c->n_sessions];
	memset(ss, 0, sizeof(*ss));
	ss->id = s->id;
	ss->ip = s->ip;
	ss->port = s->port;
	memcpy(ss->mac, s->mac, 6);
	ss->enabled = s->enabled;
	ss->cancel_on_disconnect = s->cancel_on_disconnect != 0;
	ss->next_in_seq = 1;
	ss->next_out_seq = 1;
	ss->live_head = ORDER_NIL;
	ss->live_tail = ORDER_NIL;
	ss->heartbeat_ns = s->heartbeat_ns ? s->heartbeat_ns : 1000000000ull;
	ss->timeout_ns = s->timeout_ns ? s->timeout_ns : 3000000000ull;
	memset(&ss->throttle, 0, sizeof(ss->throttle));
	ss->replay = alloc_lines((size_t)c->cfg.replay_depth * REPLAY_SLOT);
	if (!ss->replay)
		return -1;
	memset(ss->replay, 0, (size_t)c->cfg.replay_depth * REPLAY_SLOT);

	uint32_t i = id_hash(s->id) & c->session_mask;
	while (c->session_ix[i] != 0)
		i = (i + 1) & c->session_mask;
	c->session_ix[i] = ++c->n_sessions;
	return 0;
}

int oms_core_add_venue(struct oms_core *c, const struct oms_venue_config *v)
{
	if (c->n_venues >= c->cfg.max_venues || v->id == 0 ||
	    c->venue_by_id[v->id])
		return -1;
	struct venue *vv = &c->venues[c->n_venues];
	memset(vv, 0, sizeof(*vv));
	vv->id = v->id;
	vv->ip = v->ip;
	vv->port = v->port;
	memcpy(vv->mac, v->mac, 6);
	memcpy(vv->session, v->session, sizeof(vv->session));
	vv->next_out_seq = 1;
	vv->next_in_seq = 1;
	vv->next_ref = 1; /* OUCH 5.0 §1.2: UserRefNum begins at 1 */
	vv->request_port = v->request_port ? v->request_port : (uint16_t)(v->port + 1);
	vv->heartbeat_ns = v->heartbeat_ns ? v->heartbeat_ns : 1000000000ull;
	vv->timeout_ns = v->timeout_ns ? v->timeout_ns : 3000000000ull;
	vv->max_unanswered = v->max_unanswered;
	vv->fill_ratio_pm = 500;
	vv->replay = alloc_lines((size_t)c->cfg.replay_depth * REPLAY_SLOT);
	if (!vv->replay)
		return -1;
	memset(vv->replay, 0, (size_t)c->cfg.replay_depth * REPLAY_SLOT);
	c->venue_by_id[v->id] = (uint16_t)++c->n_venues;
	return 0;
}

/* The worker's side of a swap: take the published generation at a burst
 * (or command) boundary.  `c->gen` is only used inside a burst or command,
 * which begins here, so the generation it pointed to before may already be
 * freed: it is compared, never read.  Account slots not seen before start
 * with the operator's global kill switch. */
void core_adopt_gen(struct oms_core *c)
{
	const struct risk_gen *g = __atomic_load_n(&c->published, __ATOMIC_ACQUIRE);

	if (g == c->gen)
		return;
	for (uint32_t a = c->risk.adopted_accounts; a < g->n_accounts; a++)
		c->risk.accounts[a].kill = c->risk.kill_all;
	c->risk.adopted_accounts = g->n_accounts;
	if (c->gen_number != 0)
		c->stats.event[OMS_EV_CONFIG_SWAPS]++; /* the first is no swap */
	c->gen = g;
	__atomic_store_n(&c->gen_number, g->number, __ATOMIC_RELAXED);
}

void oms_core_take_generation(struct oms_core *c)
{
	core_adopt_gen(c);
}

struct risk_gen *oms_core_publish(struct oms_core *c, struct risk_gen *g)
{
	if (g->max_accounts != c->cfg.max_accounts ||
	    g->max_positions != c->cfg.max_positions ||
	    g->max_instruments != c->cfg.max_instruments ||
	    g->max_sessions != c->cfg.max_sessions)
		return g; /* built for another core: refused, handed back */
	return __atomic_exchange_n(&c->published, g, __ATOMIC_ACQ_REL);
}

uint64_t oms_core_generation(const struct oms_core *c)
{
	return __atomic_load_n(&c->gen_number, __ATOMIC_RELAXED);
}

const struct risk_gen *oms_core_published(const struct oms_core *c)
{
	return __atomic_load_n(&c->published, __ATOMIC_ACQUIRE);
}

int oms_core_set_kill(struct oms_core *c, uint32_t account, int on)
{
	core_adopt_gen(c);
	uint32_t a = risk_account_find(c->gen, account);

	if (a == RISK_NIL)
		return -1;
	c->risk.accounts[a].kill = on != 0;
	return 0;
}

int oms_core_set_journal_full(struct oms_core *c, int full)
{
	c->journal_full = full != 0;
	return 0;
}

int oms_core_journal_full(const struct oms_core *c)
{
	return c->journal_full;
}

int oms_core_account_view(const struct oms_core *c, uint32_t account,
			  struct oms_account_view *out)
{
	const struct risk_gen *g = oms_core_published(c);
	uint32_t a = risk_account_find(g, account);

	if (a == RISK_NIL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->open_orders = c->risk.accounts[a].open_orders;
	out->open_notional = c->risk.accounts[a].open_notional;
	return 0;
}

int oms_core_position_view(const struct oms_core *c, uint32_t account,
			   const char symbol[8], struct oms_position_view *out)
{
	const struct risk_gen *g = oms_core_published(c);
	uint32_t a = risk_account_find(g, account);
	uint32_t in = risk_symbol_find(g, symbol);
	uint32_t p = a == RISK_NIL || in == RISK_NIL ? RISK_NIL
			: risk_position_find(g, a, in);

	if (p == RISK_NIL || g->positions[p].max_position < 0)
		return -1;
	const struct risk_pos_state *rp = &c->risk.positions[p];
	out->max_position = g->positions[p].max_position;
	out->position = rp->position;
	out->open_buy = rp->open_buy;
	out->open_sell = rp->open_sell;
	return 0;
}

uint8_t *core_tx_frame(struct oms_core *c)
{
	uint32_t limit = c->cfg.tx_capacity + (c->bulk ? c->orders.capacity : 0);

	if (c->tx_count >= limit) {
		c->stats.drop[OMS_DROP_TX_FULL]++;
		return NULL;
	}
	return c->tx_buf + (size_t)c->tx_count * OMS_TX_SLOT;
}

void core_tx_commit(struct oms_core *c, uint32_t len)
{
	c->tx_lens[c->tx_count++] = (uint16_t)len;
	c->stats.event[OMS_EV_FRAMES_OUT]++;
}

uint32_t oms_core_process_burst(struct oms_core *c,
				const uint8_t *const *frames,
				const uint16_t *lens, uint32_t n,
				uint64_t now_ns)
{
	c->now_ns = now_ns;
	core_adopt_gen(c);
	stage_burst_begin(c, n);
	if (!c->timers_started || now_ns >= c->next_timer)
		run_timers(c);
	/* parse a part of the burst, fetch what it will look up, handle it */
	for (uint32_t base = 0; base < n; base += OMS_PREFETCH_BURST) {
		struct net_udp_view u[OMS_PREFETCH_BURST];
		int r[OMS_PREFETCH_BURST];
		uint32_t m = n - base < OMS_PREFETCH_BURST ? n - base : OMS_PREFETCH_BURST;

		for (uint32_t i = 0; i < m; i++)
			r[i] = net_parse_udp_opt(frames[base + i], lens[base + i], c->cfg.ip,
						 !(c->cfg.checksum_offload & OMS_CSUM_RX_VERIFIED),
						 &u[i]);
		burst_prefetch(c, u, r, m);
		for (uint32_t i = 0; i < m; i++) {
			c->stats.event[OMS_EV_FRAMES_IN]++;
			if (r[i] != OMS_OK) {
				c->stats.drop[r[i]]++;
				continue;
			}
			if (u[i].dst_port == c->cfg.strategy_port) {
				strategy_datagram(c, &u[i]);
				continue;
			}
			priority_barrier(c); /* a venue's answer ends the run */
			if (u[i].dst_port == c->cfg.venue_port)
				venue_packet(c, &u[i]);
			else if (u[i].dst_port == c->cfg.venue_request_port)
				venue_request(c, &u[i]);
			else
				c->stats.drop[OMS_DROP_UNKNOWN_PORT]++;
		}
	}
	priority_barrier(c);
	return c->tx_count;
}

const uint8_t *oms_core_tx_buf(const struct oms_core *c)
{
	return c->tx_buf;
}

const uint16_t *oms_core_tx_lens(const struct oms_core *c)
{
	return c->tx_lens;
}

uint32_t oms_core_tx_count(const struct oms_core *c)
{
	return c->tx_count;
}

void oms_core_tx_clear(struct oms_core *c)
{
	stage_tx_done(c);
	c->tx_count = 0;
}

const struct oms_stats *oms_core_stats(const struct oms_core *c)
{
	return &c->stats;
}

uint32_t oms_core_live_orders(const struct oms_core *c)
{
	return c->orders.live;
}

static void order_view(const struct oms_core *c, const struct order *od,
		       uint32_t session_id, struct oms_order_view *out)
{
	memset(out, 0, sizeof(*out));
	out->cl_ord_id = od->cl_ord_id;
	out->session_id = session_id;
	out->account = od->account;
	out->price = od->price;
	out->pending_price = od->pending_price;
	out->qty = od->qty;
	out->pending_qty = od->pending_qty;
	out->cum_qty = od->cum_qty;
	out->leaves_qty = od->leaves_qty;
	out->ref = od->ref;
	out->pending_ref = od->pending_ref;
	out->venue = c->venues[od->venue].id;
	out->state = od->state;
	out->side = od->side;
	out->ord_type = od->ord_type;
	out->tif = od->tif;
	out->flags = od->flags;
	out->acked = od->acked;
	out->children = od->n_children;
	memcpy(out->state_ts, od->state_ts, sizeof(out->state_ts));
}

static uint32_t order_of(const struct oms_core *c, uint32_t session_id, uint64_t cl_ord_id)
{
	const struct session *s = core_session_by_id(c, session_id);

	if (!s)
		return ORDER_NIL;
	return index_find(&c->orders.by_id, cl_ord_id, (uint32_t)(s - c->sessions));
}

int oms_core_order_find(const struct oms_core *c, uint32_t session_id,
			uint64_t cl_ord_id, struct oms_order_view *out)
{
	uint32_t o = order_of(c, session_id, cl_ord_id);

	if (o == ORDER_NIL)
		return -1;
	order_view(c, &c->orders.orders[o], session_id, out);
	return 0;
}

int oms_core_order_children(const struct oms_core *c, uint32_t session_id,
			    uint64_t cl_ord_id, struct oms_order_view *out, uint32_t max)
{
	uint32_t o = order_of(c, session_id, cl_ord_id);
	uint32_t n = 0;

	if (o == ORDER_NIL)
		return 0;
	const struct order *od = &c->orders.orders[o];
	for (uint32_t k = 0; k < od->n_children && n < max; k++)
		if (split_child_of(c, od->child[k], o))
			order_view(c, &c->orders.orders[od->child[k]], session_id, &out[n++]);
	return (int)n;
}

void oms_core_set_timing(struct oms_core *c, int on)
{
	c->timing = on;
}

const struct lat_hist *oms_core_latency(const struct oms_core *c)
{
	return &c->lat;
}

uint64_t oms_lat_bucket_low(uint32_t b)
{
	return lat_bucket_low(b);
}

uint32_t oms_lat_buckets(void)
{
	return LAT_BUCKETS;
}
