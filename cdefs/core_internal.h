/* The core's private state: one struct per worker, owned by that worker. */
#ifndef OMS_CORE_INTERNAL_H
#define OMS_CORE_INTERNAL_H

#include <stdint.h>

#include "oms_core.h"
#include "orders.h"

struct session {
	uint64_t next_in_seq;  /* next application seq expected */
	uint64_t next_out_seq; /* next application seq to send */
	uint32_t id;
	uint32_t ip;
	uint32_t live_head; /* live orders in creation order */
	uint32_t live_tail;
	uint16_t port;
	uint8_t mac[6];
	uint8_t enabled;
	uint8_t logged_in;
} __attribute__((aligned(64)));

struct venue {
	uint64_t next_out_seq; /* framing seq of our next message */
	uint64_t next_in_seq;  /* framing seq expected from the venue */
	uint32_t next_ref;     /* next OUCH UserRefNum */
	uint32_t ip;
	uint16_t id;
	uint16_t port;
	uint8_t mac[6];
	char session[10];
} __attribute__((aligned(64)));

struct oms_core {
	struct oms_core_config cfg;
	uint64_t now_ns; /* of the burst being handled */

	struct order_table orders;

	struct session *sessions;
	uint32_t n_sessions;
	uint32_t *session_ix; /* id hash -> index + 1 */
	uint32_t session_mask;

	struct venue *venues;
	uint32_t n_venues;
	uint16_t *venue_by_id; /* venue id -> index + 1 */

	uint64_t *symbols; /* open addressing set of 8-byte symbols */
	uint32_t symbol_mask;
	uint32_t n_instruments;

	uint8_t *tx_buf;
	uint16_t *tx_lens;
	uint32_t tx_count;

	int timing;
	struct lat_hist lat;
	struct oms_stats stats;
};

#endif
