/* What the observability side reads from a core: per-stage latency
 * histograms, orders handled and rejected by message type, and views of
 * session and venue health.  Recording (cdefs/stages_record.h) is a few
 * instructions per order into this core's own histograms - one core per
 * worker, so nothing is shared on the hot path; readers merge the workers'
 * histograms when they read them (control/metrics.py).
 *
 * Included by oms_core.h, so cffi binds it too. */
#ifndef OMS_STAGES_H
#define OMS_STAGES_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "latency.h"

/* Stage latency histograms of one core, in TSC cycles (never used for any
 * decision, never written into a frame).  Recorded only while timing is on
 * (oms_core_set_timing).  Per application message (NewOrder, Modify,
 * Cancel, MassCancel) that reaches its handler:
 *   RX_TO_DECISION  burst handed to the core -> the message's outputs built
 *   DECISION_TO_TX  outputs built -> the backend took the frames
 *                   (oms_core_tx_clear: after rte_eth_tx_burst in the worker)
 *   IN_TO_OUT       burst handed to the core -> frames taken: the two above
 *   HANDLE          the handler alone (oms_core_latency's histogram)
 * FEED_TO_BOOK, per market-data packet the dispatcher hands a feed
 * (cdefs/md_dispatch.c): from the hand-over to the feed's books and tops of
 * book updated, recorded in the core on the dispatcher's thread. */
enum oms_stage {
	OMS_STAGE_RX_TO_DECISION = 0,
	OMS_STAGE_DECISION_TO_TX = 1,
	OMS_STAGE_IN_TO_OUT = 2,
	OMS_STAGE_HANDLE = 3,
	OMS_STAGE_FEED_TO_BOOK = 4,
	OMS_STAGE_MAX = 5,
};

/* NewOrder, Modify, Cancel, MassCancel: strategy types 0x10 .. 0x13 */
#define OMS_APP_TYPES 4

struct oms_order_counts {
	/* application messages handled, by type - 0x10 (always counted) */
	uint64_t handled[OMS_APP_TYPES];
	/* of those, the ones not rejected by the appliance: every check
	 * passed, the request went to the venue (MassCancel: always) */
	uint64_t accepted[OMS_APP_TYPES];
	/* Rejected sent to a strategy, by the type rejected and reason slot:
	 * business reasons as struct oms_stats counts them, then system
	 * reasons (1000 + i at OMS_REJ_BUSINESS_SLOTS + i); VENUE_REJECTED
	 * (14) included: the venue's verdict, later */
	uint64_t rejected[OMS_APP_TYPES][OMS_REJ_BUSINESS_SLOTS + OMS_REJ_SYSTEM_SLOTS];
	/* messages whose DECISION_TO_TX / IN_TO_OUT could not be kept for the
	 * transmit: more messages in one burst than transmit slots (the
	 * burst overflowed the transmit area too, or most of its messages
	 * sent nothing, as MassCancels that match no order) */
	uint64_t stage_unrecorded;
};

struct oms_session_health {
	uint32_t id;
	uint8_t logged_in;
	uint8_t enabled;
	uint64_t next_in_seq;
	uint64_t next_out_seq;
	uint64_t last_rx_ns;
	uint64_t last_tx_ns;
	uint32_t gap_requests_outstanding;
};

struct oms_venue_health {
	uint16_t id;
	uint8_t down;
	uint64_t next_in_seq;
	uint64_t next_out_seq;
	uint64_t last_rx_ns;
	uint64_t last_tx_ns;
	uint32_t gap_requests_outstanding;
	uint32_t next_ref;
};

struct oms_core;
struct oms_order_view;

const struct lat_hist *oms_core_stage(const struct oms_core *c, int stage);
/* Venue round trip of venue `index` (0 .. n - 1, configuration order), in
 * ns of the burst clock (now_ns): our Enter/Replace/Cancel to the venue's
 * first answer to it.  NULL past the last venue. */
const struct lat_hist *oms_core_venue_rtt(const struct oms_core *c, uint32_t index);
/* Enter Orders sent to venue `index`. */
uint64_t oms_core_venue_routed(const struct oms_core *c, uint32_t index);
const struct oms_order_counts *oms_core_order_counts(const struct oms_core *c);
/* Health views by table index; -1 past the end. */
int oms_core_session_health(const struct oms_core *c, uint32_t index,
			    struct oms_session_health *out);
int oms_core_venue_health(const struct oms_core *c, uint32_t index,
			  struct oms_venue_health *out);
/* The order a venue knows by (venue id, UserRefNum); -1 when none. */
int oms_core_order_by_ref(const struct oms_core *c, uint16_t venue_id, uint32_t ref,
			  struct oms_order_view *out);

#endif
