/* The journal: an append-only, memory-mapped, CRC-framed log of the core's
 * INPUTS - every burst handed to oms_core_process_burst (timer calls with
 * n = 0 included), every state-changing control command, every
 * configuration generation the core adopted - in the order the core saw
 * them.  The core is deterministic in those inputs, so recovery is their
 * re-execution through a fresh core with the output discarded
 * (docs/durability.md).
 *
 * One writer: the thread that drives the core.  Appending is a memcpy into
 * a mapping reserved once at open; the file under it grows by fallocate in
 * segment_mb steps, so the hot path makes no syscall except the per-burst
 * msync of durability "burst".
 *
 * Like oms_core.h, this header is read by cffi through the preprocessor. */
#ifndef OMS_JOURNAL_H
#define OMS_JOURNAL_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#include "command.h"
#include "oms_core.h"

enum {
	OMS_JOURNAL_VERSION = 1,
	OMS_JOURNAL_HEADER = 128, /* bytes of the file header */
	OMS_JOURNAL_RECORD = 32,  /* bytes of a record header */
	/* 'J' 'R' in the high half of magic_type, the type in the low */
	OMS_JOURNAL_MAGIC = 0x4a520000,
	/* an existing journal opens on a full disk if this much is left */
	OMS_JOURNAL_MIN_ROOM = 65536,
};

enum oms_journal_type {
	OMS_JREC_BURST = 1,      /* body: struct oms_jburst, lens, frames */
	OMS_JREC_COMMAND = 2,    /* body: struct oms_jcommand */
	OMS_JREC_GENERATION = 3, /* body: struct oms_jgeneration, YAML text */
	/* body as BURST's: the market-data frames the dispatcher handed to
	 * the feeds at now_ns, before the core's burst at that time */
	OMS_JREC_MARKET = 4,
	/* body: struct oms_jroute, then n_venues struct oms_jroute_venue: one
	 * routing decision of the smart router with what it read.  An OUTPUT,
	 * written after the BURST that made it when routing.model or
	 * journal.route_records is set; recovery re-executes the BURST and
	 * compares its own decision with it, changing nothing */
	OMS_JREC_ROUTE = 5,
};

enum oms_journal_durability {
	/* the kernel writes the mapping back when it likes */
	OMS_JNL_NONE = 0,
	/* a background thread msyncs what was appended every sync_interval_ms */
	OMS_JNL_PERIODIC = 1,
	/* oms_journal_commit() msyncs the burst's records before its output
	 * is transmitted */
	OMS_JNL_BURST = 2,
};

/* The file header, at offset 0; the records follow it. */
struct oms_journal_file_header {
	char magic[8];        /* "OMSJRNL\0" */
	uint32_t version;
	uint32_t header_size; /* OMS_JOURNAL_HEADER */
	uint64_t created_ns;  /* wall clock when the file was made (information) */
	uint32_t appliance_ip;
	uint8_t appliance_mac[6];
	uint8_t pad[6];
	/* the writer's fencing epoch (hot standby): a record stream from a
	 * lower epoch than the reader knows is a fenced primary's */
	uint64_t epoch;
	uint64_t first_seq;   /* sequence number of the first record */
	uint8_t reserved[68];
	uint32_t crc;         /* CRC32C of the bytes before it */
};

/* Every record: this header, then `length` bytes of body, then zeros up to
 * a multiple of 8.  crc covers the header (crc taken as 0) and the body. */
struct oms_journal_record {
	uint32_t magic_type;
	uint32_t length;
	uint32_t crc;
	uint32_t reserved;
	uint64_t seq;    /* first_seq, first_seq + 1, ... without gaps */
	uint64_t now_ns; /* the time the core was handed with it */
};

/* BURST body: n, then n uint16 lengths, padded to 8, then the frames, each
 * padded to 8 (so each starts aligned as it did in its buffer). */
struct oms_jburst {
	uint32_t n;
	uint32_t pad;
};

struct oms_jcommand {
	uint32_t op; /* enum oms_command_op: TICK, MASS_CANCEL or KILL */
	uint32_t a;
	uint32_t b;
	uint32_t pad;
};

/* GENERATION body: the generation's number and the configuration (YAML)
 * it was built from, text_len bytes, which recovery loads and builds again
 * (oms_journal_gen_fn). */
struct oms_jgeneration {
	uint64_t number;
	uint32_t text_len;
	uint32_t pad;
};

/* ROUTE body (docs/fill-model.md "Dataset"): the decision, laid out without
 * implicit padding (dataplane/journal_route.py derives its view from it). */
struct oms_jroute {
	uint64_t route_seq;    /* the core's decision number (1, 2, ...) */
	uint64_t model_id;     /* the fill model in force; 0: none */
	uint64_t cl_ord_id;
	int64_t price;         /* limit; 0 for market */
	int64_t tick;          /* the instrument's (0: not configured) */
	char symbol[8];
	uint32_t session_id;
	uint32_t account;
	uint32_t qty;
	uint16_t venue;        /* chosen id; 0: none (NO_ROUTE) */
	uint8_t side;          /* SP_SIDE_* */
	uint8_t ord_type;      /* SP_ORD_* */
	uint8_t tif;           /* SP_TIF_* */
	uint8_t by_model;      /* 1: the model chose; 0: the rules */
	uint8_t n_venues;      /* entries that follow, in configuration order */
	uint8_t n_children;    /* split into this many; 0: not split */
	uint8_t pad[4];
};

/* One candidate venue of a ROUTE record, as the router read it. */
struct oms_jroute_venue {
	int64_t bid_px, ask_px;  /* its top of book; 0 (and qty 0): none */
	uint64_t rtt_ewma_ns;    /* its acknowledgement round-trip EWMA */
	int64_t cost;            /* latency cost, price units */
	uint32_t bid_qty, ask_qty;
	/* (now_ns - the book's last publication) / 1000, at most UINT32_MAX:
	 * the fill model's quote-age feature */
	uint32_t quote_age_us;
	uint32_t fill_ratio_pm;  /* its recent fill ratio, per mille */
	int32_t p_fill;          /* the model's probability, Q30; -1: none or refused */
	uint32_t alloc;          /* shares sent there */
	uint32_t ref;            /* the UserRefNum of the order sent there; 0: none */
	uint16_t venue;          /* id */
	uint8_t why;             /* enum oms_route_why */
	uint8_t pad;
};

struct oms_journal_config {
	int durability;            /* enum oms_journal_durability */
	uint32_t sync_interval_ms; /* OMS_JNL_PERIODIC; 0: 10 */
	uint32_t segment_mb;       /* growth step of the file; 0: 64 */
	uint64_t max_bytes;        /* address space reserved; 0: 64 GiB */
	uint32_t appliance_ip;     /* identity written into a new file */
	uint8_t appliance_mac[6];
	uint64_t epoch;
	/* ROUTE records even without a fill model (journal.route_records) */
	uint8_t route_records;
};

struct oms_journal_stats {
	uint64_t records;
	uint64_t bursts;
	uint64_t commands;
	uint64_t generations;
	uint64_t frames;
	uint64_t markets;       /* MARKET records */
	uint64_t market_frames; /* frames in them */
	uint64_t routes;        /* ROUTE records */
	/* decisions the core's ring no longer held when their burst was
	 * recorded (more than OMS_ROUTE_RING in one burst): not recorded */
	uint64_t routes_lost;
	uint64_t end;          /* bytes of the file in use */
	uint64_t file_size;    /* bytes allocated */
	uint64_t next_seq;
	uint64_t syncs;        /* msync calls */
	uint64_t synced;       /* bytes known written back */
	uint64_t grows;        /* fallocate calls (a step, or a 2 MiB piece of one) */
	uint64_t grow_ns;      /* time they took, faulting the pages in included */
	/* appends that found the file full and grew it themselves (the helper
	 * thread, which grows a step ahead, was late): a stall on the hot path */
	uint64_t grow_stalls;
	/* records that found no room (the file could not grow: disk full);
	 * nothing of them is in the journal */
	uint64_t append_failed;
	uint64_t sync_errors;
	/* 1 while the file cannot grow (docs/durability.md "Full disk") */
	uint64_t full;
};

/* What a walk of a journal found (oms_journal_scan, oms_journal_recover). */
struct oms_journal_scan {
	struct oms_journal_file_header header;
	uint64_t records;
	uint64_t bursts;
	uint64_t commands;
	uint64_t generations;
	uint64_t frames;
	uint64_t markets;
	uint64_t market_frames;
	uint64_t routes;
	/* recovery: ROUTE records compared with the re-executed decision (the
	 * ring still held it), and how many of those differed */
	uint64_t routes_checked;
	uint64_t routes_differing;
	/* MARKET records re-executed without market data to hand them to
	 * (oms_core_set_market not called): the books were not rebuilt */
	uint64_t markets_skipped;
	uint64_t first_seq;
	uint64_t last_seq;     /* first_seq - 1 when empty */
	uint64_t first_ns;
	uint64_t last_ns;
	uint64_t end;          /* offset just past the last good record */
	uint64_t file_size;
	/* a torn tail: bytes after `end` that are not zero (a record cut short,
	 * a bad CRC, a sequence gap), in how many places it was seen */
	uint64_t torn_bytes;
	uint64_t torn_cut;     /* 1 when the tail was cut off the file */
	/* a good record found AFTER the first bad one: damage in the middle,
	 * not a torn tail; recovery refuses to cut it */
	uint64_t good_after_bad;
	uint64_t last_generation;
	uint64_t replay_ns;    /* recovery: time spent re-executing */
};

/* Rebuild generation `number` from the configuration text it was built
 * from, publish it and take it (oms_core_take_generation): 0, or non-zero
 * to abort recovery.  Called for every GENERATION record whose number is
 * above the core's own. */
typedef int (*oms_journal_gen_fn)(void *ctx, uint64_t number, const char *text,
				  uint32_t text_len);

struct oms_journal;

/* Open `path` for appending, creating it (with a header from cfg) if it does
 * not exist; an existing journal is walked to its end, and a torn tail is
 * cut.  NULL and why in err on failure (damage in the middle included). */
struct oms_journal *oms_journal_open(const char *path, const struct oms_journal_config *cfg,
				     char *err, unsigned errlen);
/* Sync what is appended (whatever the durability), stop the sync thread,
 * trim the file to what is in use, unmap. */
void oms_journal_close(struct oms_journal *j);

/* Record the generation the core judges by, if the journal does not hold
 * it yet (call once the core's first generation is taken, before its
 * first burst). 0, or -1 when it could not be appended. */
int oms_journal_attach(struct oms_journal *j, const struct oms_core *core);
/* After oms_core_process_burst(core, frames, lens, n, now_ns) and before
 * its output is transmitted: a GENERATION record if the burst adopted a new
 * generation, then the BURST record.  0, or -1 (counted in append_failed). */
int oms_journal_burst(struct oms_journal *j, const struct oms_core *core,
		      const uint8_t *const *frames, const uint16_t *lens, uint32_t n,
		      uint64_t now_ns);
/* The market-data frames a dispatcher handed to its feeds at now_ns (it
 * calls this itself once given the journal: oms_md_set_journal), before
 * the core's burst at that time.  0, or -1 (counted in append_failed). */
int oms_journal_market(struct oms_journal *j, const uint8_t *const *frames,
		       const uint16_t *lens, uint32_t n, uint64_t now_ns);
/* After oms_command_apply(core, cmd, now_ns): the COMMAND record of a
 * state-changing command (TICK, MASS_CANCEL, KILL; others change nothing
 * and are not recorded). */
int oms_journal_command(struct oms_journal *j, const struct oms_core *core,
			const struct oms_command *cmd, uint64_t now_ns);
/* Durability "burst": msync everything appended and not yet synced
 * (MS_SYNC); nothing for the other policies.  Call before transmitting. */
void oms_journal_commit(struct oms_journal *j);
/* msync everything appended (any policy): 0, or -1. */
int oms_journal_sync(struct oms_journal *j);
void oms_journal_stats(const struct oms_journal *j, struct oms_journal_stats *out);
/* 1 while the file cannot grow: the disk is full and the appends run on
 * the reserve (what was allocated, up to two steps); 0 once the helper has
 * grown it again.  Read by the writer at a burst boundary. */
int oms_journal_full(const struct oms_journal *j);

/* Walk the journal at `path` checking every record (read only unless
 * cut_torn_tail, which truncates a torn tail off the file): 0, or -1 and
 * why in err (not a journal, damage in the middle). */
int oms_journal_scan(const char *path, int cut_torn_tail, struct oms_journal_scan *out,
		     char *err, unsigned errlen);
/* Crash recovery: walk the journal, re-execute every good record through
 * `core` (a fresh core built from the journal's first generation),
 * discarding what it transmits - BURST -> process_burst at the recorded
 * now_ns, COMMAND -> oms_command_apply, GENERATION -> gen_fn, MARKET -> the
 * feeds of the core's market data (oms_core_set_market), whose timers run
 * at every record's now_ns before it, as the poll loop ran them - and with
 * cut_torn_tail cut a torn tail off the file (never damage with good
 * records after it).  0, or -1 and why in err. */
int oms_journal_recover(struct oms_core *core, const char *path, int cut_torn_tail,
			oms_journal_gen_fn gen_fn, void *ctx, struct oms_journal_scan *out,
			char *err, unsigned errlen);

/* Apply one record (header and body, `len` bytes, its CRC checked) to
 * `core` as recovery does, output discarded: what a hot standby does with
 * each record the primary streams to it (it checks the sequence numbers
 * follow).  0, or -1 and why in err. */
int oms_journal_apply(struct oms_core *core, const void *record, uint64_t len,
		      oms_journal_gen_fn gen_fn, void *ctx, char *err, unsigned errlen);

/* The text of the first GENERATION record (the configuration the journal's
 * core was started with), copied into buf: its length, or -1 when there is
 * none or it does not fit (then *need holds the size). */
int64_t oms_journal_first_config(const char *path, char *buf, uint64_t cap, uint64_t *need);

/* For the hot standby (cdefs/replication.c): a function the commit calls
 * after its sync; NULL: none. */
void oms_journal_set_commit_hook(struct oms_journal *j, void (*fn)(void *), void *ctx);
/* 1: report the journal full (new orders rejected) whatever the disk */
void oms_journal_set_blocked(struct oms_journal *j, int blocked);
/* The mapping, and (*end) the bytes in use: records are immutable once
 * below end.  Read by the writer's own thread. */
const uint8_t *oms_journal_data(const struct oms_journal *j, uint64_t *end);
uint64_t oms_journal_next_seq(const struct oms_journal *j);
/* The offset of record `seq` (end when seq is the next), or UINT64_MAX. */
uint64_t oms_journal_offset_of(const struct oms_journal *j, uint64_t seq);
uint64_t oms_journal_epoch(const struct oms_journal *j);
/* Write the file header's epoch and sync it: 0, or -1. */
int oms_journal_set_epoch(struct oms_journal *j, uint64_t epoch);
/* Append a record received whole (a backup's copy of its primary's): its
 * CRC must hold and its seq be the next.  0, or -1. */
int oms_journal_append_raw(struct oms_journal *j, const void *record, uint64_t len);

#ifndef OMS_CFFI
/* What a poll loop does with its journal (NULL: none) BEFORE a core call:
 * when the journal's health changed, tell the core (it rejects NewOrders
 * while the journal is full) by a command that is itself recorded, so
 * that recovery re-executes the same decisions.  Nothing is transmitted. */
static inline void oms_journal_before_burst(struct oms_journal *j, struct oms_core *core,
					    uint64_t now_ns)
{
	int full;

	if (j && (full = oms_journal_full(j)) != oms_core_journal_full(core)) {
		struct oms_command cmd = {.op = OMS_CMD_JOURNAL_FULL, .a = (uint32_t)full};
		oms_command_apply(core, &cmd, now_ns);
		oms_journal_command(j, core, &cmd, now_ns);
	}
}

/* What a poll loop does with its journal (NULL: none) after a core call and
 * before transmitting its output: record it, then sync per the policy. */
static inline void oms_journal_after_burst(struct oms_journal *j, const struct oms_core *core,
					   const uint8_t *const *frames, const uint16_t *lens,
					   uint32_t n, uint64_t now_ns)
{
	if (j) {
		oms_journal_burst(j, core, frames, lens, n, now_ns);
		oms_journal_commit(j);
	}
}

static inline void oms_journal_after_command(struct oms_journal *j, const struct oms_core *core,
					     const struct oms_command *cmd, uint64_t now_ns)
{
	if (j) {
		oms_journal_command(j, core, cmd, now_ns);
		oms_journal_commit(j);
	}
}
#endif

/* CRC32C (Castagnoli), SSE4.2 where the CPU has it: the one definition. */
uint32_t oms_crc32c(uint32_t crc, const void *data, uint64_t len);

/* A generation's configuration text, for the journal (copied; freed with
 * the generation).  0, or -1 out of memory. */
int oms_gen_set_source(struct risk_gen *g, const char *text, uint32_t len);

#endif
