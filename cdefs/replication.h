/* Hot standby: the primary streams its journal records, in order, to a
 * backup over a TCP link of their own (not the order path); the backup
 * checks each CRC and that sequence numbers follow, appends it to its own
 * journal, applies it to its own core (oms_journal_apply) and acknowledges
 * the highest sequence number it holds.  With `sync`, the primary's
 * oms_journal_commit (the hook every poll loop calls before transmitting a
 * core call's output) waits for that acknowledgement.  The backup takes
 * over when the primary's link closes or goes quiet past `timeout_us`:
 * epoch + 1 (persisted in its journal's header), a FENCE to the old
 * primary, and the poll loop announces the service address by gratuitous
 * ARP.  A primary that learns of a higher epoch is fenced: it transmits
 * nothing more.  docs/durability.md "Hot standby".
 *
 * Everything here runs on the poll loop's thread (one writer of the core
 * and the journal); the primary makes its socket calls once per core call
 * (a batch of records), or at most every poll_us when idle, never per
 * order.  Like oms_core.h, read by cffi through the preprocessor. */
#ifndef OMS_REPLICATION_H
#define OMS_REPLICATION_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "journal.h"

enum oms_repl_role {
	OMS_REPL_PRIMARY = 1, /* transmits; streams its journal to a backup */
	OMS_REPL_BACKUP = 2,  /* applies the primary's stream; transmits nothing */
	OMS_REPL_FENCED = 3,  /* was primary, a higher epoch exists: silent */
};

/* What oms_repl_poll tells the poll loop. */
enum oms_repl_state {
	OMS_REPL_ACTIVE = 0,   /* primary: run the core, transmit */
	OMS_REPL_PASSIVE = 1,  /* backup or fenced: drop what arrives, run nothing */
	OMS_REPL_TAKEOVER = 2, /* just promoted: announce (gratuitous ARP), then active */
};

/* What a primary does when the backup's acknowledgement does not come
 * within ack_wait_us (docs/durability.md "Hot standby"). */
enum oms_repl_degrade {
	/* go on alone: transmit, and wait again once the backup has caught up */
	OMS_REPL_STANDALONE = 0,
	/* the same, and the core rejects new orders (SYS_JOURNAL) until the
	 * backup has caught up again */
	OMS_REPL_REJECT_NEW = 1,
};

struct oms_repl_config {
	int role;              /* enum oms_repl_role: PRIMARY or BACKUP at start */
	uint32_t listen_ip;    /* where a primary accepts its backup (host order) */
	uint16_t listen_port;
	uint32_t peer_ip;      /* where a backup finds its primary */
	uint16_t peer_port;
	int sync;              /* wait for the backup's ack before transmitting */
	int degrade;           /* enum oms_repl_degrade */
	uint32_t heartbeat_us; /* primary: a heartbeat when it sent nothing this long */
	uint32_t timeout_us;   /* backup: take over after this long without a word */
	uint32_t ack_wait_us;  /* primary: the longest wait for an ack, then degrade */
	uint32_t poll_us;      /* primary, idle: look at the link this often */
	/* the appliance's strategy-facing UDP port: the test hook tells venue
	 * output by it */
	uint16_t strategy_udp;
};

struct oms_repl_stats {
	uint64_t role;
	uint64_t epoch;
	uint64_t connected;      /* 1 while a peer is on the link */
	/* primary: the backup holds everything (acks gate); backup: it once
	 * held all its primary had (only then may it take over) */
	uint64_t in_sync;
	uint64_t acked_seq;      /* primary: the backup's highest; backup: applied */
	uint64_t peer_seq;       /* backup: the primary's last, from its heartbeat */
	uint64_t sends;          /* send calls carrying records (one per core call) */
	uint64_t bytes_sent;
	uint64_t records_applied;
	uint64_t apply_errors;   /* backup: a record that did not apply: link dropped */
	uint64_t connects;
	uint64_t disconnects;
	uint64_t heartbeats_sent;
	uint64_t ack_waits;      /* commits that waited for an ack */
	uint64_t ack_wait_ns;    /* their total wait */
	uint64_t ack_wait_max_ns;
	uint64_t ack_timeouts;   /* waits that ran out: degraded */
	uint64_t degraded;       /* 1 while the primary goes on without the backup */
	uint64_t tx_fenced;      /* frames not sent because not (or no longer) primary */
	uint64_t takeovers;
	uint64_t takeover_ns;    /* CLOCK_REALTIME of the last takeover */
	uint64_t fenced_by;      /* the epoch that fenced this one */
	uint64_t held;           /* test hook: holds made */
};

struct oms_repl;

/* Bind the link (a primary listens; a backup connects from its poll loop),
 * and, for a primary, hook its commit into the journal.  The epoch is the
 * journal header's.  NULL and why in err. */
struct oms_repl *oms_repl_open(const struct oms_repl_config *cfg, struct oms_journal *j,
			       struct oms_core *core, char *err, unsigned errlen);
void oms_repl_close(struct oms_repl *r);
/* Once per poll-loop iteration, before anything else. */
int oms_repl_poll(struct oms_repl *r);
/* 1 while frames may leave (primary, not fenced). */
int oms_repl_may_transmit(const struct oms_repl *r);
/* Called for every frame the loop did not send because of the role. */
void oms_repl_count_fenced(struct oms_repl *r, uint32_t n);
/* From any thread: fence this instance if `epoch` is above its own (an
 * operator's or arbiter's fence); taken by the loop's next poll. */
void oms_repl_fence(struct oms_repl *r, uint64_t epoch);
void oms_repl_stats(const struct oms_repl *r, struct oms_repl_stats *out);
/* The journal commit hook (oms_repl_open installs it for a primary). */
void oms_repl_commit(void *r);

#endif
