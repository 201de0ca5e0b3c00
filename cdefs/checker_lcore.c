/* Typed mode's modification and cancellation workers (oms_dpdk.h, "Typed
 * mode").  Each takes its lane's frames from the I/O lcore, checks what can
 * be checked without the order and without writing anything - framing,
 * version, length, that the session exists and the datagram comes from its
 * address, and for a Modify the bounds of its quantity and price - and
 * hands every frame on, unchanged and in its order, to the placement
 * worker.  Nothing is dropped here: a frame that fails is still the next
 * sequence number of its session, which only the placement worker's core
 * may consume (and answer with a SessionReject or Rejected). */
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "net.h"
#include "oms_dpdk.h"
#include "ouch_wire.h"
#include "sp_wire.h"

#define IDLE_SPINS 1024

static const struct oms_checker_session *session_of(const struct oms_checker *k, uint32_t id)
{
	for (uint32_t i = 0; i < k->n_sessions; i++)
		if (k->sessions[i].id == id)
			return &k->sessions[i];
	return NULL;
}

/* A Modify that no order could make right (docs/semantics.md: the
 * owner still answers it, after the checks that need the order). */
static int modify_wrong_anyway(const uint8_t *p)
{
	struct sp_modify m;

	memcpy(&m, p, sizeof(m));
	return m.new_qty == 0 || m.new_qty > OUCH_MAX_QTY || m.new_price <= 0 ||
	       m.new_price % 10000 != 0 || m.new_price / 10000 > OUCH_MAX_PRICE;
}

static void check(struct oms_checker *k, const uint8_t *f, uint32_t len)
{
	struct net_udp_view u;

	if (net_parse_udp_opt(f, len, k->ip, 0, &u) != OMS_OK || u.dst_port != k->strategy_udp) {
		k->stats.malformed++;
		return;
	}
	const uint8_t *p = u.payload;
	uint32_t left = u.payload_len;
	while (left >= sizeof(struct sp_header)) {
		struct sp_header h;
		memcpy(&h, p, sizeof(h));
		if (h.length < sizeof(h) || h.length > left)
			break;
		k->stats.messages++;
		const struct oms_checker_session *s = session_of(k, h.session_id);
		uint16_t want = h.type == SP_MODIFY	    ? sizeof(struct sp_modify)
				: h.type == SP_CANCEL	    ? sizeof(struct sp_cancel)
				: h.type == SP_MASS_CANCEL ? sizeof(struct sp_mass_cancel)
				: h.type == SP_NEW_ORDER   ? sizeof(struct sp_new_order)
							    : 0;
		if (h.version != SP_VERSION || h.length != want)
			k->stats.malformed++;
		else if (!s || s->ip != u.src_ip || s->port != u.src_port)
			k->stats.unknown_session++;
		else if (h.type == SP_MODIFY && modify_wrong_anyway(p))
			k->stats.order_free_rejects++;
		else
			k->stats.well_formed++;
		p += h.length;
		left -= h.length;
	}
	if (left)
		k->stats.malformed++;
}

/* The placement worker takes its lanes in every poll; when it shares our
 * CPU it needs us to yield for that. */
static void hand_on(struct oms_checker *k, struct rte_mbuf **m, unsigned n)
{
	unsigned sent = 0;

	for (uint32_t t = 0; sent < n; t++) {
		sent += rte_ring_sp_enqueue_burst(k->out_ring, (void **)(m + sent), n - sent, NULL);
		if (sent < n) {
			k->stats.out_waits++;
			if (t % 64 == 63)
				sched_yield();
		}
	}
}

static int checker_main(void *arg)
{
	struct oms_checker *k = arg;
	struct rte_mbuf *m[OMS_BURST];
	uint32_t idle = 0;

	while (!k->stop) {
		unsigned n = rte_ring_sc_dequeue_burst(k->in_ring, (void **)m, OMS_BURST, NULL);
		if (n) {
			for (unsigned i = 0; i < n; i++)
				check(k, rte_pktmbuf_mtod(m[i], const uint8_t *),
				      rte_pktmbuf_data_len(m[i]));
			k->stats.frames += n;
			hand_on(k, m, n);
			k->stats.busy_polls++;
			idle = 0;
			continue;
		}
		k->stats.idle_polls++;
		if (++idle < IDLE_SPINS || k->idle_sleep_us == 0)
			rte_pause();
		else
			usleep((useconds_t)k->idle_sleep_us);
	}
	return 0;
}

int oms_checker_launch(struct oms_checker *k, unsigned lcore)
{
	return rte_eal_remote_launch(checker_main, k, lcore);
}
