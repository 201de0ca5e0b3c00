/* The journal of the core's inputs and its recovery (journal.h,
 * docs/durability.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core_internal.h"
#include "journal.h"
#include "sp_wire.h"

#define ALIGN8(x) (((uint64_t)(x) + 7) & ~(uint64_t)7)
#define MAGIC_MASK 0xffff0000u
/* Address space reserved at open: the file grows under the mapping, which
 * therefore never moves (no mremap, so the sync thread never races it). */
#define DEFAULT_MAX_BYTES (64ull << 30)
#define DEFAULT_SEGMENT_MB 64
#define DEFAULT_SYNC_MS 10
/* the helper allocates ahead in pieces this big, syncing in between */
#define GROW_CHUNK (2ull << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static const char FILE_MAGIC[8] = "OMSJRNL";

/* ---- CRC32C --------------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, uint64_t len)
{
	while (len--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p,
							    uint64_t len)
{
	uint64_t c64 = c;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = _mm_crc32_u64(c64, v);
	}
	c = (uint32_t)c64;
	for (; len; len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#endif

/* 0: not chosen yet; 1: table; 2: SSE4.2 */
static int crc_impl;

uint32_t oms_crc32c(uint32_t crc, const void *data, uint64_t len)
{
	int impl = __atomic_load_n(&crc_impl, __ATOMIC_ACQUIRE);

	if (!impl) {
		crc_table_init();
		impl = 1;
#if defined(__x86_64__)
		if (__builtin_cpu_supports("sse4.2"))
			impl = 2;
#endif
		__atomic_store_n(&crc_impl, impl, __ATOMIC_RELEASE);
	}
	uint32_t c = ~crc;
#if defined(__x86_64__)
	if (impl == 2)
		return ~crc_sse42(c, data, len);
#endif
	return ~crc_soft(c, data, len);
}

static uint32_t record_crc(const struct oms_journal_record *r, const uint8_t *body)
{
	struct oms_journal_record h = *r;

	h.crc = 0;
	return oms_crc32c(oms_crc32c(0, &h, sizeof(h)), body, r->length);
}

static void fail(char *err, unsigned errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- Walking a journal ---------------------------------------------------- */

typedef int (*visit_fn)(void *ctx, const struct oms_journal_record *r, const uint8_t *body);

static int header_ok(const uint8_t *base, uint64_t size)
{
	const struct oms_journal_file_header *h = (const void *)base;

	return size >= OMS_JOURNAL_HEADER && !memcmp(h->magic, FILE_MAGIC, 8) &&
	       h->version == OMS_JOURNAL_VERSION && h->header_size == OMS_JOURNAL_HEADER &&
	       h->crc == oms_crc32c(0, h, offsetof(struct oms_journal_file_header, crc));
}

/* The record at `off` if it is whole and its CRC holds (whatever its seq). */
static const struct oms_journal_record *record_at(const uint8_t *base, uint64_t size,
						  uint64_t off)
{
	if (off + OMS_JOURNAL_RECORD > size)
		return NULL;
	const struct oms_journal_record *r = (const void *)(base + off);
	uint32_t type = r->magic_type & ~MAGIC_MASK;

	if ((r->magic_type & MAGIC_MASK) != OMS_JOURNAL_MAGIC || type < OMS_JREC_BURST ||
	    type > OMS_JREC_ROUTE || r->length > size - off - OMS_JOURNAL_RECORD ||
	    record_crc(r, base + off + OMS_JOURNAL_RECORD) != r->crc)
		return NULL;
	return r;
}

/* Walk every good record from the header on, counting into `out`; a visitor
 * that returns non-zero stops the walk (returned).  Then measure what lies
 * after the last good record: zeros (a clean end in the pre-allocated
 * space), or a torn tail, or good records after a bad one (damage). */
static int walk(const uint8_t *base, uint64_t size, struct oms_journal_scan *out,
		visit_fn visit, void *ctx)
{
	const struct oms_journal_file_header *h = (const void *)base;
	uint64_t off = OMS_JOURNAL_HEADER, seq = h->first_seq;

	memcpy(&out->header, h, sizeof(*h));
	out->first_seq = h->first_seq;
	out->file_size = size;
	for (;;) {
		const struct oms_journal_record *r = record_at(base, size, off);
		if (!r || r->seq != seq)
			break;
		const uint8_t *body = base + off + OMS_JOURNAL_RECORD;
		uint32_t type = r->magic_type & ~MAGIC_MASK;
		if (out->records == 0)
			out->first_ns = r->now_ns;
		out->last_ns = r->now_ns;
		out->records++;
		if (type == OMS_JREC_BURST) {
			out->bursts++;
			out->frames += ((const struct oms_jburst *)body)->n;
		} else if (type == OMS_JREC_COMMAND) {
			out->commands++;
		} else if (type == OMS_JREC_MARKET) {
			out->markets++;
			out->market_frames += ((const struct oms_jburst *)body)->n;
		} else if (type == OMS_JREC_ROUTE) {
			out->routes++;
		} else {
			out->generations++;
			out->last_generation = ((const struct oms_jgeneration *)body)->number;
		}
		if (visit) {
			int rc = visit(ctx, r, body);
			if (rc)
				return rc;
		}
		off += OMS_JOURNAL_RECORD + ALIGN8(r->length);
		seq++;
	}
	out->end = off;
	out->last_seq = seq - 1;
	uint64_t last = size;
	while (last > off && base[last - 1] == 0)
		last--;
	out->torn_bytes = last - off;
	if (out->torn_bytes)
		for (uint64_t o = off + 8; o + OMS_JOURNAL_RECORD <= last; o += 8)
			if (record_at(base, size, o)) {
				out->good_after_bad++;
				break;
			}
	return 0;
}

/* Map `path` for reading and walk it.  *fd_out keeps the file open (for a
 * cut) when asked. */
static int scan_file(const char *path, int writable, struct oms_journal_scan *out,
		     visit_fn visit, void *ctx, int *fd_out, char *err, unsigned errlen)
{
	int fd = open(path, writable ? O_RDWR : O_RDONLY);
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (fd < 0) {
		fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < OMS_JOURNAL_HEADER) {
		fail(err, errlen, "%s: not a journal (shorter than its header)", path);
		close(fd);
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	/* every page is read (CRC), in order: the kernel reads ahead of the
	 * walk (from a cold cache the reading overlaps the re-execution) and
	 * maps pages in groups (fault-around) */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint8_t *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		fail(err, errlen, "%s: cannot map: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	madvise(base, size, MADV_SEQUENTIAL);
	madvise(base, size, MADV_WILLNEED);
	int rc = -1;
	if (!header_ok(base, size)) {
		fail(err, errlen, "%s: not a journal of version %d (bad file header)", path,
		     OMS_JOURNAL_VERSION);
	} else {
		rc = walk(base, size, out, visit, ctx);
	}
	munmap(base, size);
	if (fd_out && rc == 0)
		*fd_out = fd;
	else
		close(fd);
	return rc;
}

/* Cut a torn tail (mode 1), or also damage with good records after it
 * (mode 2).  0, or -1 when refused or failed. */
static int cut_tail(const char *path, int fd, int mode, struct oms_journal_scan *s,
		    char *err, unsigned errlen)
{
	if (!s->torn_bytes)
		return 0;
	if (s->good_after_bad && mode < 2) {
		fail(err, errlen, "%s: damaged at offset %llu (seq %llu) with good records after "
		     "it: not a torn tail; refusing to cut (omsctl journal verify; cut with "
		     "--force)", path, (unsigned long long)s->end,
		     (unsigned long long)(s->last_seq + 1));
		return -1;
	}
	if (ftruncate(fd, (off_t)s->end) != 0) {
		fail(err, errlen, "%s: cannot cut the torn tail: %s", path, strerror(errno));
		return -1;
	}
	fsync(fd);
	s->torn_cut = 1;
	return 0;
}

int oms_journal_scan(const char *path, int cut_torn_tail, struct oms_journal_scan *out,
		     char *err, unsigned errlen)
{
	int fd = -1;

	if (scan_file(path, cut_torn_tail != 0, out, NULL, NULL, &fd, err, errlen))
		return -1;
	int rc = cut_torn_tail ? cut_tail(path, fd, cut_torn_tail, out, err, errlen) : 0;
	close(fd);
	return rc;
}

/* ---- ROUTE records ------------------------------------------------------------ */

/* The ROUTE body of decision `d` into `out` (room for OMS_ROUTE_SEEN
 * venues): its length.  The one encoding, for writing and for recovery's
 * comparison. */
static uint32_t route_body(const struct oms_route_decision *d, const struct risk_gen *g,
			   uint8_t *out)
{
	/* the tick from the generation the burst was judged by: the ring
	 * keeps it out of the router's cache lines */
	uint32_t in = g ? risk_symbol_find(g, d->symbol) : RISK_NIL;
	struct oms_jroute jr = {.route_seq = d->seq, .model_id = d->model_id,
				.cl_ord_id = d->cl_ord_id, .price = d->price,
				.tick = in == RISK_NIL ? 0 : g->instruments[in].tick,
				.session_id = d->session_id, .account = d->account, .qty = d->qty,
				.venue = d->venue, .side = d->side, .ord_type = d->ord_type,
				.tif = d->tif, .by_model = d->by_model, .n_venues = d->n_seen,
				.n_children = d->n_children};
	uint8_t *p = out + sizeof(jr);

	memcpy(jr.symbol, d->symbol, 8);
	memcpy(out, &jr, sizeof(jr));
	for (uint32_t k = 0; k < d->n_seen; k++, p += sizeof(struct oms_jroute_venue)) {
		const struct oms_route_seen *s = &d->seen[k];
		/* px and qty are the side the order takes */
		int buy = d->side == SP_SIDE_BUY;
		struct oms_jroute_venue v = {.bid_px = buy ? s->contra_px : s->px,
					     .ask_px = buy ? s->px : s->contra_px,
					     .bid_qty = buy ? s->contra_qty : s->qty,
					     .ask_qty = buy ? s->qty : s->contra_qty,
					     .quote_age_us = s->quote_age_us,
					     .rtt_ewma_ns = s->rtt_ewma_ns, .cost = s->cost,
					     .fill_ratio_pm = s->fill_ratio_pm, .p_fill = s->p_fill,
					     .alloc = s->alloc, .ref = s->ref, .venue = s->venue,
					     .why = s->why};
		memcpy(p, &v, sizeof(v));
	}
	return (uint32_t)(p - out);
}

enum { ROUTE_BODY_MAX = sizeof(struct oms_jroute) +
			OMS_ROUTE_SEEN * sizeof(struct oms_jroute_venue) };

/* ---- Recovery --------------------------------------------------------------- */

struct replay {
	struct oms_core *core;
	oms_journal_gen_fn gen_fn;
	void *ctx;
	const uint8_t **frames; /* `inline_frames`, or malloc'd for a bigger burst */
	uint32_t cap;
	char *err;
	unsigned errlen;
	uint16_t *lens;
	uint64_t markets_skipped;
	uint64_t routes_checked;
	uint64_t routes_differing;
	const uint8_t *inline_frames[64];
	uint16_t inline_lens[64];
};

static void replay_init(struct replay *rp, struct oms_core *core, oms_journal_gen_fn gen_fn,
			void *ctx, char *err, unsigned errlen)
{
	rp->core = core;
	rp->gen_fn = gen_fn;
	rp->ctx = ctx;
	rp->err = err;
	rp->errlen = errlen;
	rp->frames = rp->inline_frames;
	rp->lens = rp->inline_lens;
	rp->cap = sizeof(rp->inline_frames) / sizeof(rp->inline_frames[0]);
	rp->markets_skipped = 0;
	rp->routes_checked = 0;
	rp->routes_differing = 0;
}

static void replay_done(struct replay *rp)
{
	if (rp->frames != rp->inline_frames)
		free(rp->frames);
}

static int replay_record(void *arg, const struct oms_journal_record *r, const uint8_t *body)
{
	struct replay *rp = arg;
	uint32_t type = r->magic_type & ~MAGIC_MASK;

	struct oms_md_dispatch *md = oms_core_market(rp->core);

	if (type == OMS_JREC_ROUTE) {
		/* an output: the BURST before it made the decision again; compare
		 * while the core's ring still holds it */
		const struct oms_jroute *jr = (const void *)body;
		const struct oms_core *c = rp->core;
		uint8_t mine[ROUTE_BODY_MAX];

		if (r->length < sizeof(*jr) || jr->route_seq == 0 || jr->route_seq > c->route_seq ||
		    c->route_seq - jr->route_seq >= OMS_ROUTE_RING)
			return 0;
		const struct oms_route_decision *d =
			&c->route_ring[jr->route_seq & (OMS_ROUTE_RING - 1)];
		uint32_t n = route_body(d, c->gen, mine);
		rp->routes_checked++;
		if (n != r->length || memcmp(mine, body, n) != 0)
			rp->routes_differing++;
		return 0;
	}
	/* the poll loop ran the feeds' timers before each core call and each
	 * hand-over to the feeds, at its time: a feed's timers decide by now
	 * and its last packet only, so running them at each record's time
	 * gives the books the core read */
	if (md && type != OMS_JREC_GENERATION)
		oms_md_timers(md, r->now_ns);
	if (type == OMS_JREC_BURST || type == OMS_JREC_MARKET) {
		const struct oms_jburst *b = (const void *)body;
		const uint16_t *lens = (const void *)(body + sizeof(*b));
		const uint8_t *f = body + sizeof(*b) + ALIGN8(2ull * b->n);
		if (b->n > rp->cap) {
			const uint8_t **p = malloc(b->n * (sizeof(*p) + sizeof(uint16_t)));
			if (!p) {
				fail(rp->err, rp->errlen, "out of memory");
				return -1;
			}
			replay_done(rp);
			rp->frames = p;
			rp->lens = (uint16_t *)(p + b->n);
			rp->cap = b->n;
		}
		for (uint32_t i = 0; i < b->n; i++) {
			rp->frames[i] = f;
			rp->lens[i] = lens[i];
			f += ALIGN8(lens[i]);
		}
		if (type == OMS_JREC_BURST)
			oms_core_process_burst(rp->core, rp->frames, rp->lens, b->n, r->now_ns);
		else if (md)
			oms_md_split(md, rp->frames, rp->lens, b->n, r->now_ns);
		else
			rp->markets_skipped++;
	} else if (type == OMS_JREC_COMMAND) {
		const struct oms_jcommand *jc = (const void *)body;
		struct oms_command cmd = {.op = (int)jc->op, .a = jc->a, .b = jc->b};
		oms_command_apply(rp->core, &cmd, r->now_ns);
	} else {
		const struct oms_jgeneration *g = (const void *)body;
		uint64_t have = oms_core_generation(rp->core);
		if (g->number <= have)
			return 0; /* the core was built with it */
		if (!rp->gen_fn) {
			fail(rp->err, rp->errlen, "seq %llu: generation %llu needs rebuilding "
			     "from its configuration and no one was given to",
			     (unsigned long long)r->seq, (unsigned long long)g->number);
			return -1;
		}
		if (rp->gen_fn(rp->ctx, g->number, (const char *)(g + 1), g->text_len) != 0 ||
		    oms_core_generation(rp->core) != g->number) {
			fail(rp->err, rp->errlen, "seq %llu: generation %llu could not be rebuilt "
			     "(the core judges by %llu)", (unsigned long long)r->seq,
			     (unsigned long long)g->number,
			     (unsigned long long)oms_core_generation(rp->core));
			return -1;
		}
	}
	oms_core_tx_clear(rp->core); /* sent before the crash: never again */
	for (uint32_t i = 0; md && i < oms_md_feeds(md); i++)
		oms_feed_tx_clear(oms_md_feed(md, i)); /* re-requests, likewise */
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int oms_journal_recover(struct oms_core *core, const char *path, int cut_torn_tail,
			oms_journal_gen_fn gen_fn, void *ctx, struct oms_journal_scan *out,
			char *err, unsigned errlen)
{
	struct replay rp;
	int fd = -1;
	uint64_t t0 = mono_ns();

	replay_init(&rp, core, gen_fn, ctx, err, errlen);
	oms_core_tx_clear(core);
	int rc = scan_file(path, cut_torn_tail != 0, out, replay_record, &rp, &fd, err, errlen);
	out->markets_skipped = rp.markets_skipped;
	out->routes_checked = rp.routes_checked;
	out->routes_differing = rp.routes_differing;
	replay_done(&rp);
	out->replay_ns = mono_ns() - t0;
	if (rc)
		return -1;
	rc = cut_torn_tail ? cut_tail(path, fd, 1, out, err, errlen) : 0;
	close(fd);
	return rc;
}

int oms_journal_apply(struct oms_core *core, const void *record, uint64_t len,
		      oms_journal_gen_fn gen_fn, void *ctx, char *err, unsigned errlen)
{
	const struct oms_journal_record *r = record_at(record, len, 0);
	struct replay rp;

	if (!r) {
		fail(err, errlen, "not a whole journal record with a good CRC");
		return -1;
	}
	replay_init(&rp, core, gen_fn, ctx, err, errlen);
	oms_core_tx_clear(core);
	int rc = replay_record(&rp, r, (const uint8_t *)record + OMS_JOURNAL_RECORD);
	replay_done(&rp);
	return rc ? -1 : 0;
}

struct first_config {
	char *buf;
	uint64_t cap;
	uint64_t need;
	int64_t len;
};

static int take_first_config(void *arg, const struct oms_journal_record *r, const uint8_t *body)
{
	struct first_config *fc = arg;
	const struct oms_jgeneration *g = (const void *)body;

	if ((r->magic_type & ~MAGIC_MASK) != OMS_JREC_GENERATION)
		return 0;
	fc->need = g->text_len;
	if (g->text_len <= fc->cap) {
		memcpy(fc->buf, g + 1, g->text_len);
		fc->len = g->text_len;
	}
	return 1; /* stop: the first is the one */
}

int64_t oms_journal_first_config(const char *path, char *buf, uint64_t cap, uint64_t *need)
{
	struct first_config fc = {.buf = buf, .cap = cap, .len = -1};
	struct oms_journal_scan s;

	scan_file(path, 0, &s, take_first_config, &fc, NULL, NULL, 0);
	if (need)
		*need = fc.need;
	return fc.len;
}

/* ---- Appending -------------------------------------------------------------- */

struct oms_journal {
	/* the writer's */
	uint8_t *base;
	uint64_t max_bytes;
	uint64_t step;
	uint64_t next_seq;
	uint64_t last_gen; /* generation number last recorded */
	uint64_t route_done; /* the core's decisions up to this one are recorded */
	int route_records;
	int fd;
	int durability;
	struct oms_journal_stats st;
	/* shared with the helper thread */
	uint64_t size;   /* bytes allocated in the file: grown under grow_lock */
	uint64_t end;    /* published with release after each record */
	uint64_t synced; /* bytes below which everything is written back */
	uint64_t page;
	uint32_t sync_ms;
	int grow_asked;  /* the writer wants the next step allocated ahead */
	/* the file could not grow (disk full): set by whichever thread found
	 * out, cleared by the helper once it has grown two steps ahead again */
	int full;
	int stop;
	int thread_started;
	/* set by a replication link that cannot keep up (degrade policy
	 * reject_new): reported as full, so new orders are rejected */
	int blocked;
	void (*commit_hook)(void *);
	void *commit_ctx;
	pthread_t thread;
	pthread_mutex_t lock; /* the helper's sleep, and an explicit sync */
	pthread_cond_t wake;
	pthread_mutex_t grow_lock;
};

static int sync_to(struct oms_journal *j, uint64_t end)
{
	uint64_t from = __atomic_load_n(&j->synced, __ATOMIC_ACQUIRE);

	if (end <= from)
		return 0;
	uint64_t start = from & ~(j->page - 1);
	int rc = msync(j->base + start, end - start, MS_SYNC);
	j->st.syncs++;
	if (rc != 0) {
		j->st.sync_errors++;
		return -1;
	}
	/* the helper and an explicit oms_journal_sync may race: keep the max */
	while (from < end && !__atomic_compare_exchange_n(&j->synced, &from, end, 0,
							  __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
		;
	return 0;
}

/* Allocate the file up to exactly `new_size`: posix_fallocate, then the new
 * pages faulted in (Linux 5.14+; best effort), so that appending takes no
 * page fault.  Under grow_lock: the helper grows ahead, the writer only
 * when it caught up. */
static int grow_exact(struct oms_journal *j, uint64_t new_size)
{
	int rc = 0;

	pthread_mutex_lock(&j->grow_lock);
	uint64_t size = j->size;
	if (new_size > size) {
		uint64_t t0 = mono_ns();
		if (new_size > j->max_bytes ||
		    posix_fallocate(j->fd, (off_t)size, (off_t)(new_size - size)) != 0) {
			rc = -1; /* disk full: nothing written past the old size */
		} else {
			madvise(j->base + size, new_size - size, MADV_POPULATE_WRITE);
			__atomic_store_n(&j->size, new_size, __ATOMIC_RELEASE);
			j->st.grows++;
			j->st.grow_ns += mono_ns() - t0;
		}
	}
	pthread_mutex_unlock(&j->grow_lock);
	return rc;
}

/* Bytes the filesystem under the journal can still allocate (all when it
 * cannot say).  The helper's, once a nap: never on the hot path. */
static uint64_t room_left(const struct oms_journal *j)
{
	struct statvfs sv;

	if (fstatvfs(j->fd, &sv) != 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/* The journal is full when the file could not grow, or when the next step
 * would not fit on the filesystem (found before the allocation fails, so
 * that the reserve - the one or two steps allocated ahead - is whole); it is
 * no longer full once the file is two steps ahead again and two steps more
 * would fit (the margin keeps it from flapping). */
static void check_room(struct oms_journal *j)
{
	if (!__atomic_load_n(&j->full, __ATOMIC_ACQUIRE) && room_left(j) < j->step)
		__atomic_store_n(&j->full, 1, __ATOMIC_RELEASE);
}

/* At least `want` bytes, in whole steps. */
static int grow_to(struct oms_journal *j, uint64_t want)
{
	return grow_exact(j, (want + j->step - 1) / j->step * j->step);
}

/* The helper's growth: two steps ahead of the writer, a chunk at a time,
 * the periodic msync kept going in between (a step can take a second). */
static void grow_ahead(struct oms_journal *j)
{
	uint64_t end = __atomic_load_n(&j->end, __ATOMIC_ACQUIRE);
	uint64_t target = (end + 2 * j->step + j->step - 1) / j->step * j->step;
	uint64_t last_sync = mono_ns();

	while (!__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE)) {
		uint64_t size = __atomic_load_n(&j->size, __ATOMIC_ACQUIRE);
		if (size >= target)
			break;
		uint64_t next = size + GROW_CHUNK < target ? size + GROW_CHUNK : target;
		if (grow_exact(j, next)) {
			/* disk full: what is left (up to a step) is the reserve
			 * for what the core still must record; the helper tries
			 * again every nap */
			__atomic_store_n(&j->full, 1, __ATOMIC_RELEASE);
			__atomic_store_n(&j->grow_asked, 0, __ATOMIC_RELEASE);
			return;
		}
		if (j->durability == OMS_JNL_PERIODIC &&
		    mono_ns() - last_sync >= (uint64_t)j->sync_ms * 1000000ull) {
			sync_to(j, __atomic_load_n(&j->end, __ATOMIC_ACQUIRE));
			last_sync = mono_ns();
		}
	}
	if (__atomic_load_n(&j->full, __ATOMIC_ACQUIRE) &&
	    __atomic_load_n(&j->size, __ATOMIC_ACQUIRE) >= target &&
	    room_left(j) >= 2 * j->step)
		__atomic_store_n(&j->full, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&j->grow_asked, 0, __ATOMIC_RELEASE);
}

/* The helper thread: the periodic msync (durability "periodic"), and the
 * next step of the file allocated before the writer needs it. */
static void *helper_main(void *arg)
{
	struct oms_journal *j = arg;
	/* a signal can be missed (the writer does not take the lock): never
	 * sleep longer than this */
	uint32_t nap_ms = j->durability == OMS_JNL_PERIODIC ? j->sync_ms : 20;

	pthread_mutex_lock(&j->lock);
	while (!j->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)nap_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&j->wake, &j->lock, &ts);
		if (j->stop)
			break;
		pthread_mutex_unlock(&j->lock);
		check_room(j);
		if (__atomic_load_n(&j->grow_asked, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&j->full, __ATOMIC_ACQUIRE))
			grow_ahead(j);
		pthread_mutex_lock(&j->lock);
		if (j->durability == OMS_JNL_PERIODIC)
			sync_to(j, __atomic_load_n(&j->end, __ATOMIC_ACQUIRE));
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static uint8_t *record_begin(struct oms_journal *j, uint64_t body_len)
{
	uint64_t want = j->end + OMS_JOURNAL_RECORD + ALIGN8(body_len);
	uint64_t size = __atomic_load_n(&j->size, __ATOMIC_ACQUIRE);

	if (want > size) {
		/* the helper is behind: grow here (a stall of one step) */
		j->st.grow_stalls++;
		if (grow_to(j, want)) {
			j->st.append_failed++;
			__atomic_store_n(&j->full, 1, __ATOMIC_RELEASE);
			return NULL;
		}
		size = __atomic_load_n(&j->size, __ATOMIC_ACQUIRE);
	}
	if (size - want < j->step && j->thread_started &&
	    !__atomic_load_n(&j->grow_asked, __ATOMIC_ACQUIRE)) {
		/* less than a step left: ask the helper for the next, once */
		__atomic_store_n(&j->grow_asked, 1, __ATOMIC_RELEASE);
		pthread_cond_signal(&j->wake);
	}
	return j->base + j->end + OMS_JOURNAL_RECORD;
}

/* The body is in place: pad it, write the header (last, so a process that
 * dies before this leaves no record at all), publish the new end. */
static void record_end(struct oms_journal *j, uint32_t type, uint64_t body_len, uint64_t now_ns)
{
	uint8_t *p = j->base + j->end;
	struct oms_journal_record h = {.magic_type = OMS_JOURNAL_MAGIC | type,
				       .length = (uint32_t)body_len, .seq = j->next_seq,
				       .now_ns = now_ns};

	memset(p + OMS_JOURNAL_RECORD + body_len, 0, ALIGN8(body_len) - body_len);
	h.crc = record_crc(&h, p + OMS_JOURNAL_RECORD);
	memcpy(p, &h, sizeof(h));
	j->next_seq++;
	j->st.records++;
	__atomic_store_n(&j->end, j->end + OMS_JOURNAL_RECORD + ALIGN8(body_len),
			 __ATOMIC_RELEASE);
}

static int append_generation(struct oms_journal *j, const struct oms_core *core)
{
	const struct risk_gen *g = core->gen;
	uint64_t body = sizeof(struct oms_jgeneration) + g->source_len;
	uint8_t *p = record_begin(j, body);

	if (!p)
		return -1;
	struct oms_jgeneration jg = {.number = g->number, .text_len = g->source_len};
	memcpy(p, &jg, sizeof(jg));
	if (g->source_len)
		memcpy(p + sizeof(jg), g->source, g->source_len);
	record_end(j, OMS_JREC_GENERATION, body, 0);
	j->last_gen = g->number;
	j->st.generations++;
	return 0;
}

/* A GENERATION record when the core has adopted one the journal lacks. */
static inline int note_generation(struct oms_journal *j, const struct oms_core *core)
{
	return core->gen_number != j->last_gen ? append_generation(j, core) : 0;
}

int oms_journal_attach(struct oms_journal *j, const struct oms_core *core)
{
	j->route_done = core->route_seq; /* decisions before: not this journal's */
	return note_generation(j, core);
}

/* The ROUTE records of the decisions the burst at now_ns just made, when a
 * fill model is in force or journal.route_records asks; read from the core's
 * ring.  Only that burst's: a journal that was not attached (a promoted
 * backup's, which copied its primary's records) never writes older ones. */
static int append_routes(struct oms_journal *j, const struct oms_core *core, uint64_t now_ns)
{
	uint64_t last = core->route_seq;

	if (last == j->route_done)
		return 0;
	if (!j->route_records && !(core->gen && core->gen->fill_model)) {
		j->route_done = last;
		return 0;
	}
	if (last - j->route_done > OMS_ROUTE_RING) {
		j->st.routes_lost += last - j->route_done - OMS_ROUTE_RING;
		j->route_done = last - OMS_ROUTE_RING;
	}
	for (uint64_t q = j->route_done + 1; q <= last; q++) {
		const struct oms_route_decision *d = &core->route_ring[q & (OMS_ROUTE_RING - 1)];
		if (d->now_ns != now_ns) {
			j->route_done = q;
			continue;
		}
		uint32_t body = (uint32_t)(sizeof(struct oms_jroute) +
					   d->n_seen * sizeof(struct oms_jroute_venue));
		uint8_t *p = record_begin(j, body);
		if (!p)
			return -1;
		route_body(d, core->gen, p);
		record_end(j, OMS_JREC_ROUTE, body, d->now_ns);
		j->st.routes++;
		j->route_done = q;
	}
	return 0;
}

/* A BURST or MARKET record of n frames. */
static int append_frames(struct oms_journal *j, uint32_t type, const uint8_t *const *frames,
			 const uint16_t *lens, uint32_t n, uint64_t now_ns)
{
	uint64_t body = sizeof(struct oms_jburst) + ALIGN8(2ull * n);
	for (uint32_t i = 0; i < n; i++)
		body += ALIGN8(lens[i]);
	uint8_t *p = record_begin(j, body);
	if (!p)
		return -1;
	struct oms_jburst b = {.n = n};
	memcpy(p, &b, sizeof(b));
	p += sizeof(b);
	if (n) /* a timer call hands NULL lens */
		memcpy(p, lens, 2ull * n);
	memset(p + 2ull * n, 0, ALIGN8(2ull * n) - 2ull * n);
	p += ALIGN8(2ull * n);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(p, frames[i], lens[i]);
		memset(p + lens[i], 0, ALIGN8(lens[i]) - lens[i]);
		p += ALIGN8(lens[i]);
	}
	record_end(j, type, body, now_ns);
	return 0;
}

int oms_journal_burst(struct oms_journal *j, const struct oms_core *core,
		      const uint8_t *const *frames, const uint16_t *lens, uint32_t n,
		      uint64_t now_ns)
{
	if (note_generation(j, core) || append_frames(j, OMS_JREC_BURST, frames, lens, n, now_ns))
		return -1;
	j->st.bursts++;
	j->st.frames += n;
	return append_routes(j, core, now_ns);
}

int oms_journal_market(struct oms_journal *j, const uint8_t *const *frames,
		       const uint16_t *lens, uint32_t n, uint64_t now_ns)
{
	if (append_frames(j, OMS_JREC_MARKET, frames, lens, n, now_ns))
		return -1;
	j->st.markets++;
	j->st.market_frames += n;
	return 0;
}

int oms_journal_command(struct oms_journal *j, const struct oms_core *core,
			const struct oms_command *cmd, uint64_t now_ns)
{
	if (cmd->op != OMS_CMD_TICK && cmd->op != OMS_CMD_MASS_CANCEL && cmd->op != OMS_CMD_KILL &&
	    cmd->op != OMS_CMD_JOURNAL_FULL)
		return 0; /* reads or waits: no state changed */
	if (note_generation(j, core))
		return -1;
	uint8_t *p = record_begin(j, sizeof(struct oms_jcommand));
	if (!p)
		return -1;
	struct oms_jcommand jc = {.op = (uint32_t)cmd->op, .a = cmd->a, .b = cmd->b};
	memcpy(p, &jc, sizeof(jc));
	record_end(j, OMS_JREC_COMMAND, sizeof(jc), now_ns);
	j->st.commands++;
	return 0;
}

void oms_journal_commit(struct oms_journal *j)
{
	if (j->durability == OMS_JNL_BURST)
		sync_to(j, j->end);
	if (j->commit_hook)
		j->commit_hook(j->commit_ctx);
}

int oms_journal_sync(struct oms_journal *j)
{
	pthread_mutex_lock(&j->lock);
	int rc = sync_to(j, __atomic_load_n(&j->end, __ATOMIC_ACQUIRE));
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int oms_journal_full(const struct oms_journal *j)
{
	return __atomic_load_n(&j->full, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&j->blocked, __ATOMIC_ACQUIRE);
}

/* ---- For the hot standby (replication.c) ------------------------------------ */

void oms_journal_set_commit_hook(struct oms_journal *j, void (*fn)(void *), void *ctx)
{
	j->commit_ctx = ctx;
	j->commit_hook = fn;
}

void oms_journal_set_blocked(struct oms_journal *j, int blocked)
{
	__atomic_store_n(&j->blocked, blocked, __ATOMIC_RELEASE);
}

const uint8_t *oms_journal_data(const struct oms_journal *j, uint64_t *end)
{
	*end = __atomic_load_n(&j->end, __ATOMIC_ACQUIRE);
	return j->base;
}

uint64_t oms_journal_next_seq(const struct oms_journal *j)
{
	return j->next_seq;
}

uint64_t oms_journal_offset_of(const struct oms_journal *j, uint64_t seq)
{
	const struct oms_journal_file_header *h = (const void *)j->base;
	uint64_t off = OMS_JOURNAL_HEADER, end = __atomic_load_n(&j->end, __ATOMIC_ACQUIRE);

	if (seq < h->first_seq)
		return UINT64_MAX;
	for (uint64_t s = h->first_seq; s < seq && off < end; s++)
		off += OMS_JOURNAL_RECORD + ALIGN8(((const struct oms_journal_record *)(j->base + off))->length);
	return off <= end ? off : UINT64_MAX;
}

uint64_t oms_journal_epoch(const struct oms_journal *j)
{
	return ((const struct oms_journal_file_header *)j->base)->epoch;
}

int oms_journal_set_epoch(struct oms_journal *j, uint64_t epoch)
{
	struct oms_journal_file_header *h = (void *)j->base;

	h->epoch = epoch;
	h->crc = oms_crc32c(0, h, offsetof(struct oms_journal_file_header, crc));
	return msync(j->base, j->page, MS_SYNC);
}

int oms_journal_append_raw(struct oms_journal *j, const void *record, uint64_t len)
{
	const struct oms_journal_record *r = record_at(record, len, 0);

	if (!r || r->seq != j->next_seq)
		return -1;
	uint64_t total = OMS_JOURNAL_RECORD + ALIGN8(r->length);
	uint32_t type = r->magic_type & ~MAGIC_MASK;
	uint8_t *p = record_begin(j, r->length);
	if (!p || total > len)
		return -1;
	memcpy(p, (const uint8_t *)record + OMS_JOURNAL_RECORD, total - OMS_JOURNAL_RECORD);
	memcpy(p - OMS_JOURNAL_RECORD, r, OMS_JOURNAL_RECORD);
	if (type == OMS_JREC_BURST) {
		j->st.bursts++;
		j->st.frames += ((const struct oms_jburst *)(r + 1))->n;
	} else if (type == OMS_JREC_COMMAND) {
		j->st.commands++;
	} else if (type == OMS_JREC_MARKET) {
		j->st.markets++;
		j->st.market_frames += ((const struct oms_jburst *)(r + 1))->n;
	} else if (type == OMS_JREC_ROUTE) {
		j->st.routes++;
	} else {
		j->st.generations++;
		j->last_gen = ((const struct oms_jgeneration *)(r + 1))->number;
	}
	j->next_seq++;
	j->st.records++;
	__atomic_store_n(&j->end, j->end + total, __ATOMIC_RELEASE);
	return 0;
}

void oms_journal_stats(const struct oms_journal *j, struct oms_journal_stats *out)
{
	*out = j->st;
	out->full = (uint64_t)oms_journal_full(j);
	out->end = __atomic_load_n(&j->end, __ATOMIC_ACQUIRE);
	out->file_size = __atomic_load_n(&j->size, __ATOMIC_ACQUIRE);
	out->next_seq = j->next_seq;
	out->synced = __atomic_load_n(&j->synced, __ATOMIC_ACQUIRE);
}

static int write_new_header(struct oms_journal *j, const struct oms_journal_config *cfg)
{
	struct oms_journal_file_header h;
	struct timespec ts;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, FILE_MAGIC, 8);
	h.version = OMS_JOURNAL_VERSION;
	h.header_size = OMS_JOURNAL_HEADER;
	clock_gettime(CLOCK_REALTIME, &ts);
	h.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	h.appliance_ip = cfg->appliance_ip;
	memcpy(h.appliance_mac, cfg->appliance_mac, 6);
	h.epoch = cfg->epoch;
	h.first_seq = 1;
	h.crc = oms_crc32c(0, &h, offsetof(struct oms_journal_file_header, crc));
	if (grow_to(j, OMS_JOURNAL_HEADER))
		return -1;
	memcpy(j->base, &h, sizeof(h));
	j->end = OMS_JOURNAL_HEADER;
	j->next_seq = 1;
	/* the header is durable before any record is */
	return msync(j->base, j->page, MS_SYNC);
}

struct oms_journal *oms_journal_open(const char *path, const struct oms_journal_config *cfg,
				     char *err, unsigned errlen)
{
	_Static_assert(sizeof(struct oms_journal_file_header) == OMS_JOURNAL_HEADER,
		       "file header size");
	_Static_assert(sizeof(struct oms_journal_record) == OMS_JOURNAL_RECORD,
		       "record header size");
	_Static_assert(sizeof(struct oms_jroute) == 72, "ROUTE body: no implicit padding");
	_Static_assert(sizeof(struct oms_jroute_venue) == 64, "ROUTE venue: no implicit padding");
	_Static_assert(sizeof(struct oms_route_seen) == 64, "a decision's venue: one cache line");
	struct oms_journal *j = calloc(1, sizeof(*j));
	struct oms_journal_scan s;
	struct stat st;

	if (!j) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	j->fd = -1;
	j->base = MAP_FAILED;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_mutex_init(&j->grow_lock, NULL);
	j->durability = cfg->durability;
	j->route_records = cfg->route_records;
	j->sync_ms = cfg->sync_interval_ms ? cfg->sync_interval_ms : DEFAULT_SYNC_MS;
	j->step = (uint64_t)(cfg->segment_mb ? cfg->segment_mb : DEFAULT_SEGMENT_MB) << 20;
	j->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
	j->page = (uint64_t)sysconf(_SC_PAGESIZE);
	if (j->durability < OMS_JNL_NONE || j->durability > OMS_JNL_BURST) {
		fail(err, errlen, "journal durability %d unknown", j->durability);
		goto out;
	}
	int existing = stat(path, &st) == 0 && st.st_size > 0;
	if (existing && oms_journal_scan(path, 1, &s, err, errlen))
		goto out;
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->fd < 0 || fstat(j->fd, &st) != 0) {
		fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	j->size = (uint64_t)st.st_size;
	if (j->size > j->max_bytes) {
		fail(err, errlen, "%s: %llu bytes, more than the %llu reserved", path,
		     (unsigned long long)j->size, (unsigned long long)j->max_bytes);
		goto out;
	}
	j->base = mmap(NULL, j->max_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       j->fd, 0);
	if (j->base == MAP_FAILED) {
		fail(err, errlen, "%s: cannot map %llu bytes: %s", path,
		     (unsigned long long)j->max_bytes, strerror(errno));
		goto out;
	}
	if (existing) {
		j->end = s.end;
		j->next_seq = s.last_seq + 1;
		j->last_gen = s.last_generation;
	} else if (write_new_header(j, cfg)) {
		fail(err, errlen, "%s: cannot write the header: %s", path, strerror(errno));
		goto out;
	}
	/* the first step now, not at the first burst; on a full disk an
	 * existing journal with a little room left opens full (new orders are
	 * rejected until space is freed) */
	if (grow_to(j, j->end + j->step / 2) &&
	    (!existing || (j->size < j->end + OMS_JOURNAL_MIN_ROOM &&
			   grow_exact(j, (j->end + OMS_JOURNAL_MIN_ROOM + j->page - 1) &
						 ~(j->page - 1))))) {
		fail(err, errlen, "%s: cannot allocate %llu bytes: %s", path,
		     (unsigned long long)j->step, strerror(errno));
		goto out;
	}
	if (j->size < j->end + j->step / 2)
		j->full = 1;
	check_room(j);
	j->synced = j->end;
	if (pthread_create(&j->thread, NULL, helper_main, j) != 0) {
		fail(err, errlen, "cannot start the journal's helper thread");
		goto out;
	}
	j->thread_started = 1;
	return j;
out:
	oms_journal_close(j);
	return NULL;
}

void oms_journal_close(struct oms_journal *j)
{
	if (!j)
		return;
	if (j->thread_started) {
		pthread_mutex_lock(&j->lock);
		j->stop = 1;
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->lock);
		pthread_join(j->thread, NULL);
	}
	if (j->base != MAP_FAILED) {
		sync_to(j, j->end);
		munmap(j->base, j->max_bytes);
	}
	if (j->fd >= 0) {
		/* the pre-allocated rest is not kept: the file ends at its data */
		if (j->end && ftruncate(j->fd, (off_t)j->end) == 0)
			fsync(j->fd);
		close(j->fd);
	}
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->grow_lock);
	free(j);
}

int oms_gen_set_source(struct risk_gen *g, const char *text, uint32_t len)
{
	char *copy = malloc(len ? len : 1);

	if (!copy)
		return -1;
	memcpy(copy, text, len);
	free(g->source);
	g->source = copy;
	g->source_len = len;
	return 0;
}
