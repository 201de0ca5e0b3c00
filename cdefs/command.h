/* Control-plane commands for a poll loop that owns a core (the DPDK worker,
 * the AF_XDP poller).  The control plane never touches the core itself: it
 * hands the loop a command by pointer (the DPDK worker's rte_ring, the AF_XDP
 * poller's mailbox), the loop runs it between two bursts, flushes what it
 * made the core send, and sets `done`.  The owner keeps it alive until then. */
#ifndef OMS_COMMAND_H
#define OMS_COMMAND_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "oms_core.h"

enum oms_command_op {
	OMS_CMD_TICK = 1,        /* run the timers at now_ns (replay) */
	OMS_CMD_MASS_CANCEL = 2, /* a: session id, b: account */
	OMS_CMD_SNAPSHOT = 3,    /* copy the core's counters into `stats` */
	OMS_CMD_KILL = 4,        /* a: account (0: every account), b: on */
	/* nothing: done shows the loop has passed a burst boundary since it
	 * was posted (a grace period for a replaced configuration) */
	OMS_CMD_SYNC = 5,
	/* copy one order into `order`: a: session id and id: cl_ord_id, or
	 * a = 0: b venue id and id the order's UserRefNum there */
	OMS_CMD_ORDER = 6,
	/* a: the journal is full (1) or has room again (0): the loop posts it
	 * itself at a burst boundary when the journal's health changed */
	OMS_CMD_JOURNAL_FULL = 7,
};

struct oms_command {
	int op;
	uint64_t now_ns; /* 0: the loop's clock */
	uint32_t a;
	uint32_t b;
	int64_t result;
	struct oms_stats *stats;
	uint64_t id;                 /* OMS_CMD_ORDER */
	struct oms_order_view *order; /* OMS_CMD_ORDER */
	volatile int done;
};

/* Run `cmd` on the core at `now_ns` and set its result; what it makes the
 * core send is left in the transmit area for the caller to flush before it
 * marks the command done. */
void oms_command_apply(struct oms_core *c, struct oms_command *cmd, uint64_t now_ns);

#endif
