/* The market-data feed handler (feed.h, docs/market-data.md): MoldUDP64
 * sequencing, ITCH 5.0 decoding into the books of book.c, and the
 * seqlocked top of book that worker cores read. */
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "feed.h"
#include "net.h"
#include "orders.h" /* pow2_at_least, id_hash, alloc_lines */

_Static_assert(sizeof(struct oms_tob) == 128, "two cache lines, no implicit padding");
_Static_assert(OMS_DROP_MAX <= 64, "net_drop is indexed by the frame parser's reasons");

enum {
	DEFAULT_RETRANSMIT_NS = 100 * 1000 * 1000,
	DEFAULT_MAX_REQUEST = 512,
	DEFAULT_TX_FRAMES = 8,
	LOCATES = 65536, /* Stock Locate is a u16 */
};

struct oms_feed {
	struct oms_feed_config cfg;
	struct oms_feed_stats stats;

	struct md_tables t;
	struct md_book *books;
	uint32_t n_books;
	uint32_t max_books;
	uint32_t *book_by_locate;  /* MD_NIL: not subscribed (or not yet seen) */
	uint64_t *symbol_by_locate; /* every directory entry, for late subscribers */
	uint32_t *book_by_index;   /* symbol index -> book */
	uint32_t *book_by_symbol;  /* open addressing on the 8 symbol bytes */
	uint32_t symbol_mask;
	struct oms_tob *tobs;      /* by symbol index */

	/* MoldUDP64 */
	uint8_t session[MOLD_SESSION_LEN];
	uint8_t have_session;
	uint8_t stale;             /* OMS_STALE_* that apply to every book */
	uint8_t requesting;        /* a re-request is outstanding */
	uint64_t expected;         /* next sequence number to apply */
	uint64_t highest;          /* sequence number after the last one seen */
	uint64_t req_end;          /* sequence number after the last one asked */
	uint64_t req_ns;
	uint64_t last_rx;
	uint8_t system_event;

	/* the message being applied */
	uint64_t now;
	uint64_t msg_seq;
	uint64_t msg_ts;

	uint8_t *tx_buf;
	uint16_t *tx_lens;
	uint32_t tx_count;
};

static const char *const drop_names[] = {
#define OMS_FEED_NAME(n) #n,
	OMS_FEED_DROP_LIST(OMS_FEED_NAME)
};
static const char *const event_names[] = {OMS_FEED_EVENT_LIST(OMS_FEED_NAME)};

const char *oms_feed_drop_name(int reason)
{
	return reason >= 0 && reason < OMS_FEED_DROP_MAX ? drop_names[reason] : "?";
}

const char *oms_feed_event_name(int event)
{
	return event >= 0 && event < OMS_FEED_EV_MAX ? event_names[event] : "?";
}

static inline uint64_t load_symbol(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* ---- creation ---- */

struct oms_feed *oms_feed_create(const struct oms_feed_config *cfg)
{
	if (!cfg->max_symbols || !cfg->max_orders || !cfg->max_levels)
		return NULL;
	struct oms_feed *f = alloc_lines(sizeof(*f));
	if (!f)
		return NULL;
	memset(f, 0, sizeof(*f));
	f->cfg = *cfg;
	if (!f->cfg.retransmit_ns)
		f->cfg.retransmit_ns = DEFAULT_RETRANSMIT_NS;
	if (!f->cfg.max_request)
		f->cfg.max_request = DEFAULT_MAX_REQUEST;
	if (!f->cfg.tx_capacity)
		f->cfg.tx_capacity = DEFAULT_TX_FRAMES;
	f->max_books = cfg->max_symbols;
	f->symbol_mask = pow2_at_least(cfg->max_symbols * 2) - 1;
	f->books = alloc_lines((size_t)f->max_books * sizeof(struct md_book));
	f->book_by_locate = alloc_lines(LOCATES * sizeof(uint32_t));
	f->symbol_by_locate = alloc_lines(LOCATES * sizeof(uint64_t));
	f->book_by_index = alloc_lines((size_t)cfg->max_symbols * sizeof(uint32_t));
	f->book_by_symbol = alloc_lines((size_t)(f->symbol_mask + 1) * sizeof(uint32_t));
	f->tobs = alloc_lines((size_t)cfg->max_symbols * sizeof(struct oms_tob));
	f->tx_buf = alloc_lines((size_t)f->cfg.tx_capacity * OMS_TX_SLOT);
	f->tx_lens = alloc_lines((size_t)f->cfg.tx_capacity * sizeof(uint16_t));
	if (!f->books || !f->book_by_locate || !f->symbol_by_locate || !f->book_by_index ||
	    !f->book_by_symbol || !f->tobs || !f->tx_buf || !f->tx_lens) {
		oms_feed_destroy(f);
		return NULL;
	}
	memset(f->books, 0, (size_t)f->max_books * sizeof(struct md_book));
	if (book_tables_init(&f->t, cfg->max_orders, cfg->max_levels, f->books, f->max_books)) {
		oms_feed_destroy(f);
		return NULL;
	}
	memset(f->book_by_locate, 0xff, LOCATES * sizeof(uint32_t));
	memset(f->symbol_by_locate, 0, LOCATES * sizeof(uint64_t));
	memset(f->book_by_index, 0xff, (size_t)cfg->max_symbols * sizeof(uint32_t));
	memset(f->book_by_symbol, 0xff, (size_t)(f->symbol_mask + 1) * sizeof(uint32_t));
	memset(f->tobs, 0, (size_t)cfg->max_symbols * sizeof(struct oms_tob));
	f->stale = OMS_STALE_NO_SESSION;
	return f;
}

void oms_feed_destroy(struct oms_feed *f)
{
	if (!f)
		return;
	book_tables_free(&f->t);
	free(f->books);
	free(f->book_by_locate);
	free(f->symbol_by_locate);
	free(f->book_by_index);
	free(f->book_by_symbol);
	free(f->tobs);
	free(f->tx_buf);
	free(f->tx_lens);
	free(f);
}

static uint32_t find_symbol(const struct oms_feed *f, uint64_t sym)
{
	for (uint32_t i = id_hash(sym) & f->symbol_mask;; i = (i + 1) & f->symbol_mask) {
		uint32_t b = f->book_by_symbol[i];
		if (b == MD_NIL || f->books[b].symbol == sym)
			return b;
	}
}

/* ---- top of book: one writer, a sequence lock ---- */

static void tob_write(struct oms_tob *t, const struct oms_tob_view *v)
{
	uint32_t s = t->seq;

	__atomic_store_n(&t->seq, s + 1, __ATOMIC_RELAXED);
	/* the odd count is visible before any field changes */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&t->stale, v->stale, __ATOMIC_RELAXED);
	__atomic_store_n(&t->halted, v->halted, __ATOMIC_RELAXED);
	__atomic_store_n(&t->trading_state, v->trading_state, __ATOMIC_RELAXED);
	__atomic_store_n(&t->reg_sho, v->reg_sho, __ATOMIC_RELAXED);
	__atomic_store_n(&t->bid_qty, v->bid_qty, __ATOMIC_RELAXED);
	__atomic_store_n(&t->ask_qty, v->ask_qty, __ATOMIC_RELAXED);
	__atomic_store_n(&t->last_qty, v->last_qty, __ATOMIC_RELAXED);
	__atomic_store_n(&t->bid_px, v->bid_px, __ATOMIC_RELAXED);
	__atomic_store_n(&t->ask_px, v->ask_px, __ATOMIC_RELAXED);
	__atomic_store_n(&t->last_px, v->last_px, __ATOMIC_RELAXED);
	__atomic_store_n(&t->updates, v->updates, __ATOMIC_RELAXED);
	__atomic_store_n(&t->last_ns, v->last_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&t->mold_seq, v->mold_seq, __ATOMIC_RELAXED);
	__atomic_store_n(&t->itch_ts, v->itch_ts, __ATOMIC_RELAXED);
	__atomic_store_n(&t->seq, s + 2, __ATOMIC_RELEASE);
}

uint32_t oms_tob_read(const struct oms_tob *t, struct oms_tob_view *v)
{
	for (uint32_t retries = 0;; retries++) {
		uint32_t s = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
		if (s & 1) {
			__builtin_ia32_pause();
			continue;
		}
		v->stale = __atomic_load_n(&t->stale, __ATOMIC_RELAXED);
		v->halted = __atomic_load_n(&t->halted, __ATOMIC_RELAXED);
		v->trading_state = __atomic_load_n(&t->trading_state, __ATOMIC_RELAXED);
		v->reg_sho = __atomic_load_n(&t->reg_sho, __ATOMIC_RELAXED);
		v->bid_qty = __atomic_load_n(&t->bid_qty, __ATOMIC_RELAXED);
		v->ask_qty = __atomic_load_n(&t->ask_qty, __ATOMIC_RELAXED);
		v->last_qty = __atomic_load_n(&t->last_qty, __ATOMIC_RELAXED);
		v->bid_px = __atomic_load_n(&t->bid_px, __ATOMIC_RELAXED);
		v->ask_px = __atomic_load_n(&t->ask_px, __ATOMIC_RELAXED);
		v->last_px = __atomic_load_n(&t->last_px, __ATOMIC_RELAXED);
		v->updates = __atomic_load_n(&t->updates, __ATOMIC_RELAXED);
		v->last_ns = __atomic_load_n(&t->last_ns, __ATOMIC_RELAXED);
		v->mold_seq = __atomic_load_n(&t->mold_seq, __ATOMIC_RELAXED);
		v->itch_ts = __atomic_load_n(&t->itch_ts, __ATOMIC_RELAXED);
		/* the field loads complete before the count is read again */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&t->seq, __ATOMIC_RELAXED) == s)
			return retries;
	}
}

static inline uint32_t qty32(uint64_t q)
{
	return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

/* Publishes book b's top of book if anything a reader sees has changed. */
static void publish(struct oms_feed *f, struct md_book *b)
{
	const struct md_level *bid = book_best(&f->t, b, 0);
	const struct md_level *ask = book_best(&f->t, b, 1);
	int64_t bid_px = bid ? bid->px : 0, ask_px = ask ? ask->px : 0;
	uint32_t bid_qty = bid ? qty32(bid->qty) : 0, ask_qty = ask ? qty32(ask->qty) : 0;
	uint8_t stale = f->stale | b->unsound;

	if (!b->dirty && bid_px == b->pub_bid_px && ask_px == b->pub_ask_px &&
	    bid_qty == b->pub_bid_qty && ask_qty == b->pub_ask_qty && stale == b->pub_stale)
		return;
	b->dirty = 0;
	b->pub_bid_px = bid_px;
	b->pub_ask_px = ask_px;
	b->pub_bid_qty = bid_qty;
	b->pub_ask_qty = ask_qty;
	b->pub_stale = stale;

	struct oms_tob *t = &f->tobs[b->symbol_index];
	struct oms_tob_view v = {
		.stale = stale,
		.halted = b->trading_state && b->trading_state != 'T',
		.trading_state = b->trading_state,
		.reg_sho = b->reg_sho,
		.bid_qty = bid_qty,
		.ask_qty = ask_qty,
		.last_qty = b->last_qty,
		.bid_px = bid_px,
		.ask_px = ask_px,
		.last_px = b->last_px,
		.updates = t->updates + 1,
		.last_ns = f->now,
		.mold_seq = f->msg_seq,
		.itch_ts = f->msg_ts,
	};
	tob_write(t, &v);
	f->stats.event[OMS_FEED_EV_TOB_UPDATES]++;
}

static void publish_all(struct oms_feed *f)
{
	for (uint32_t i = 0; i < f->n_books; i++)
		publish(f, &f->books[i]);
}

static void set_stale(struct oms_feed *f, uint8_t bits, int on)
{
	uint8_t s = on ? (uint8_t)(f->stale | bits) : (uint8_t)(f->stale & ~bits);

	if (s == f->stale)
		return;
	f->stale = s;
	publish_all(f);
}

void oms_feed_set_unsubscribed(struct oms_feed *f, int on)
{
	set_stale(f, OMS_STALE_UNSUBSCRIBED, on);
}

int oms_feed_subscribe(struct oms_feed *f, const char symbol[8], uint32_t symbol_index)
{
	uint64_t sym = load_symbol((const uint8_t *)symbol);

	if (symbol_index >= f->cfg.max_symbols || f->book_by_index[symbol_index] != MD_NIL ||
	    f->n_books >= f->max_books || find_symbol(f, sym) != MD_NIL)
		return -1;
	uint32_t bi = f->n_books++;
	struct md_book *b = &f->books[bi];
	struct md_side s0 = b->side[0], s1 = b->side[1];
	memset(b, 0, sizeof(*b));
	b->side[0] = s0;
	b->side[1] = s1;
	b->symbol = sym;
	b->symbol_index = symbol_index;
	b->dirty = 1;
	f->book_by_index[symbol_index] = bi;
	uint32_t i = id_hash(sym) & f->symbol_mask;
	while (f->book_by_symbol[i] != MD_NIL)
		i = (i + 1) & f->symbol_mask;
	f->book_by_symbol[i] = bi;
	if (f->have_session) {
		/* the directory went by already: find the stock's locate */
		for (uint32_t loc = 0; loc < LOCATES; loc++)
			if (f->symbol_by_locate[loc] == sym)
				f->book_by_locate[loc] = bi;
		b->unsound |= OMS_STALE_LATE;
	}
	publish(f, b);
	return 0;
}

/* ---- ITCH 5.0 messages ---- */

static inline void drop(struct oms_feed *f, int reason)
{
	f->stats.drop[reason]++;
}

static inline int64_t itch_price(const uint8_t *p)
{
	return (int64_t)rd_be32(p) * ITCH_PRICE_TO_FIXED;
}

static void apply_add(struct oms_feed *f, struct md_book *b, uint32_t bi, const uint8_t *m)
{
	uint64_t ref = rd_be64(m + ITCH_ADD_OFF_REF);
	uint8_t side_c = m[ITCH_ADD_OFF_SIDE];
	uint32_t qty = rd_be32(m + ITCH_ADD_OFF_SHARES);

	if (side_c != 'B' && side_c != 'S') {
		drop(f, OMS_FEED_DROP_BAD_SIDE);
		return;
	}
	if (!qty) {
		drop(f, OMS_FEED_DROP_BAD_SHARES);
		return;
	}
	if (book_find_order(&f->t, ref) != MD_NIL) {
		drop(f, OMS_FEED_DROP_DUP_REF);
		return;
	}
	int r = book_add(&f->t, f->books, bi, ref, side_c == 'S', qty,
			 itch_price(m + ITCH_ADD_OFF_PRICE));
	if (r != MD_OK) {
		/* the book no longer shows the venue's: stale until the next
		 * session */
		drop(f, r == MD_FULL_ORDERS ? OMS_FEED_DROP_ORDERS_FULL : OMS_FEED_DROP_LEVELS_FULL);
		b->unsound |= OMS_STALE_BOOK_FULL;
		return;
	}
	f->stats.event[OMS_FEED_EV_ADDS]++;
}

/* The order a message about a resting order refers to, or MD_NIL (counted)
 * when it is not in this stock's book. */
static uint32_t resting(struct oms_feed *f, uint32_t bi, uint64_t ref)
{
	uint32_t oi = book_find_order(&f->t, ref);

	if (oi == MD_NIL || f->t.orders[oi].book != bi) {
		drop(f, OMS_FEED_DROP_UNKNOWN_REF);
		return MD_NIL;
	}
	return oi;
}

/* Execution or cancel of `qty` shares; more than the order holds is an
 * anomaly (counted) that removes the order. */
static int take_shares(struct oms_feed *f, uint32_t oi, uint32_t qty)
{
	if (!qty) {
		drop(f, OMS_FEED_DROP_BAD_SHARES);
		return -1;
	}
	if (qty > f->t.orders[oi].qty) {
		drop(f, OMS_FEED_DROP_OVER_EXECUTE);
		book_remove(&f->t, f->books, oi);
		return -1;
	}
	book_reduce(&f->t, f->books, oi, qty);
	return 0;
}

static void trade_print(struct md_book *b, int64_t px, uint64_t qty)
{
	b->last_px = px;
	b->last_qty = qty32(qty);
	b->dirty = 1;
}

static void apply_replace(struct oms_feed *f, struct md_book *b, uint32_t bi, const uint8_t *m)
{
	uint32_t oi = resting(f, bi, rd_be64(m + ITCH_REPLACE_OFF_ORIG_REF));
	uint64_t new_ref = rd_be64(m + ITCH_REPLACE_OFF_NEW_REF);
	uint32_t qty = rd_be32(m + ITCH_REPLACE_OFF_SHARES);

	if (oi == MD_NIL)
		return;
	if (!qty) {
		drop(f, OMS_FEED_DROP_BAD_SHARES);
		return;
	}
	if (book_find_order(&f->t, new_ref) != MD_NIL) {
		drop(f, OMS_FEED_DROP_DUP_REF);
		return;
	}
	uint8_t side = f->t.orders[oi].side;
	book_remove(&f->t, f->books, oi);
	int r = book_add(&f->t, f->books, bi, new_ref, side, qty,
			 itch_price(m + ITCH_REPLACE_OFF_PRICE));
	if (r != MD_OK) {
		drop(f, r == MD_FULL_ORDERS ? OMS_FEED_DROP_ORDERS_FULL : OMS_FEED_DROP_LEVELS_FULL);
		b->unsound |= OMS_STALE_BOOK_FULL;
		return;
	}
	f->stats.event[OMS_FEED_EV_REPLACES]++;
}

/* The length each type must have (0: a type the feed skips). */
static uint8_t itch_len[256] = {
	['S'] = ITCH_SYSTEM_EVENT_LEN, ['R'] = ITCH_DIRECTORY_LEN,
	['H'] = ITCH_TRADING_ACTION_LEN, ['Y'] = ITCH_REG_SHO_LEN,
	['A'] = ITCH_ADD_LEN, ['F'] = ITCH_ADD_MPID_LEN, ['E'] = ITCH_EXEC_LEN,
	['C'] = ITCH_EXEC_PRICE_LEN, ['X'] = ITCH_CANCEL_LEN, ['D'] = ITCH_DELETE_LEN,
	['U'] = ITCH_REPLACE_LEN, ['P'] = ITCH_TRADE_LEN, ['Q'] = ITCH_CROSS_LEN,
	['B'] = ITCH_BROKEN_LEN,
};

static void apply_msg(struct oms_feed *f, const uint8_t *m, uint32_t len)
{
	if (!len) {
		drop(f, OMS_FEED_DROP_ITCH_BAD_LENGTH);
		return;
	}
	uint8_t type = m[0];
	f->stats.msgs_by_type[type]++;
	if (!itch_len[type]) {
		/* a type the books do not need, or one newer than 5.0: its
		 * block length already skips it */
		f->stats.event[OMS_FEED_EV_SKIPPED_TYPES]++;
		return;
	}
	if (len != itch_len[type]) {
		drop(f, OMS_FEED_DROP_ITCH_BAD_LENGTH);
		return;
	}
	f->stats.event[OMS_FEED_EV_MSGS_APPLIED]++;
	f->msg_ts = ((uint64_t)rd_be16(m + ITCH_OFF_TIMESTAMP) << 32) |
		    rd_be32(m + ITCH_OFF_TIMESTAMP + 2);
	uint16_t locate = rd_be16(m + ITCH_OFF_LOCATE);

	switch (type) {
	case 'S':
		f->system_event = m[ITCH_SYSTEM_EVENT_OFF_CODE];
		f->stats.event[OMS_FEED_EV_SYSTEM_EVENTS]++;
		return;
	case 'R': {
		f->stats.event[OMS_FEED_EV_DIRECTORY]++;
		uint64_t sym = load_symbol(m + ITCH_DIRECTORY_OFF_STOCK);
		f->symbol_by_locate[locate] = sym;
		f->book_by_locate[locate] = find_symbol(f, sym);
		return;
	}
	case 'B':
		f->stats.event[OMS_FEED_EV_BROKEN_TRADES]++;
		return;
	default:
		break;
	}

	uint32_t bi = f->book_by_locate[locate];
	if (bi == MD_NIL) {
		f->stats.event[OMS_FEED_EV_UNSUBSCRIBED]++;
		return;
	}
	struct md_book *b = &f->books[bi];
	uint32_t oi;

	switch (type) {
	case 'H':
		b->trading_state = m[ITCH_TRADING_ACTION_OFF_STATE];
		b->dirty = 1;
		f->stats.event[OMS_FEED_EV_TRADING_ACTIONS]++;
		break;
	case 'Y':
		b->reg_sho = m[ITCH_REG_SHO_OFF_ACTION];
		b->dirty = 1;
		f->stats.event[OMS_FEED_EV_REG_SHO]++;
		break;
	case 'A':
	case 'F':
		apply_add(f, b, bi, m);
		break;
	case 'E':
	case 'C': {
		oi = resting(f, bi, rd_be64(m + ITCH_EXEC_OFF_REF));
		if (oi == MD_NIL)
			break;
		uint32_t qty = rd_be32(m + ITCH_EXEC_OFF_SHARES);
		int64_t px = f->t.orders[oi].px;
		if (take_shares(f, oi, qty))
			break;
		f->stats.event[OMS_FEED_EV_EXECUTIONS]++;
		/* a non-printable execution is reported again elsewhere
		 * (ITCH 5.0 4.4.2): it updates the book, not the last trade */
		if (type == 'E')
			trade_print(b, px, qty);
		else if (m[ITCH_EXEC_OFF_PRINTABLE] == 'Y')
			trade_print(b, itch_price(m + ITCH_EXEC_OFF_PRICE), qty);
		break;
	}
	case 'X':
		oi = resting(f, bi, rd_be64(m + ITCH_CANCEL_OFF_REF));
		if (oi != MD_NIL && !take_shares(f, oi, rd_be32(m + ITCH_CANCEL_OFF_SHARES)))
			f->stats.event[OMS_FEED_EV_CANCELS]++;
		break;
	case 'D':
		oi = resting(f, bi, rd_be64(m + ITCH_DELETE_OFF_REF));
		if (oi != MD_NIL) {
			book_remove(&f->t, f->books, oi);
			f->stats.event[OMS_FEED_EV_DELETES]++;
		}
		break;
	case 'U':
		apply_replace(f, b, bi, m);
		break;
	case 'P':
		trade_print(b, itch_price(m + ITCH_TRADE_OFF_PRICE), rd_be32(m + ITCH_TRADE_OFF_SHARES));
		f->stats.event[OMS_FEED_EV_TRADES]++;
		break;
	case 'Q':
		trade_print(b, itch_price(m + ITCH_CROSS_OFF_PRICE), rd_be64(m + ITCH_CROSS_OFF_SHARES));
		f->stats.event[OMS_FEED_EV_CROSSES]++;
		break;
	}
	publish(f, b);
}

/* ---- MoldUDP64 ---- */

/* Prefetching ahead in a packet (hints only).  peek_block returns the
 * message of the block at *off and moves *off past it; NULL at the end or
 * at a block that does not fit (the main walk counts that one).  Messages
 * that refer to an order carry its reference at offset 11 (E C X D U; A
 * and F a new one, whose slot an add probes too); the length checked here
 * is enough to read it. */
static inline const uint8_t *peek_block(const uint8_t *p, uint32_t len, uint32_t *off)
{
	if (*off + MOLD_BLOCK_HLEN > len)
		return NULL;
	uint32_t mlen = rd_be16(p + *off);
	if (*off + MOLD_BLOCK_HLEN + mlen > len)
		return NULL;
	const uint8_t *m = p + *off + MOLD_BLOCK_HLEN;
	*off += MOLD_BLOCK_HLEN + mlen;
	static const uint8_t too_short[1];
	return mlen >= ITCH_HLEN + 8 ? m : too_short;
}

static inline int refers_to_order(uint8_t t)
{
	return t == 'E' || t == 'C' || t == 'X' || t == 'D' || t == 'U';
}

static inline void prefetch_slot(const struct oms_feed *f, const uint8_t *m)
{
	if (refers_to_order(m[0]) || m[0] == 'A' || m[0] == 'F')
		book_prefetch_slot(&f->t, rd_be64(m + ITCH_ADD_OFF_REF));
}

static inline void prefetch_order(const struct oms_feed *f, const uint8_t *m)
{
	if (refers_to_order(m[0]))
		book_prefetch_order(&f->t, rd_be64(m + ITCH_ADD_OFF_REF));
}

static void send_request(struct oms_feed *f)
{
	uint64_t count = f->highest - f->expected;

	if (count > f->cfg.max_request)
		count = f->cfg.max_request;
	f->requesting = 1;
	f->req_ns = f->now;
	f->req_end = f->expected + count;
	if (f->tx_count >= f->cfg.tx_capacity) {
		/* the timer asks again */
		drop(f, OMS_FEED_DROP_TX_FULL);
		return;
	}
	uint8_t *frame = f->tx_buf + (size_t)f->tx_count * OMS_TX_SLOT;
	uint8_t *p = frame + NET_TX_HLEN;
	memcpy(p + MOLD_OFF_SESSION, f->session, MOLD_SESSION_LEN);
	wr_be64(p + MOLD_OFF_SEQ, f->expected);
	wr_be16(p + MOLD_OFF_COUNT, (uint16_t)count);
	net_build_udp_opt(frame, f->cfg.mac, f->cfg.retrans_mac, f->cfg.ip, f->cfg.retrans_ip,
			  f->cfg.port, f->cfg.retrans_port, MOLD_REQUEST_LEN,
			  f->cfg.checksum_offload & OMS_CSUM_TX_OFFLOAD);
	f->tx_lens[f->tx_count++] = NET_TX_HLEN + MOLD_REQUEST_LEN;
	f->stats.event[OMS_FEED_EV_REQUESTS]++;
}

/* Messages up to `seq` (exclusive) exist that the feed has not applied. */
static void gap_to(struct oms_feed *f, uint64_t seq)
{
	if (seq > f->highest)
		f->highest = seq;
	if (f->stale & OMS_STALE_GAP && f->cfg.retrans_ip)
		return; /* already recovering: the same gap, longer */
	f->stats.event[OMS_FEED_EV_GAPS]++;
	f->stats.event[OMS_FEED_EV_GAP_MSGS] += seq - f->expected;
	set_stale(f, OMS_STALE_GAP, 1);
	if (f->cfg.retrans_ip) {
		send_request(f);
		return;
	}
	/* nobody to ask: carry on from here, stale until the next session */
	f->expected = seq;
}

static void new_session(struct oms_feed *f, const uint8_t *session)
{
	memcpy(f->session, session, MOLD_SESSION_LEN);
	f->have_session = 1;
	f->expected = 1;
	f->highest = 1;
	f->requesting = 0;
	f->stats.event[OMS_FEED_EV_SESSIONS]++;
	book_tables_reset(&f->t, f->books, f->n_books);
	memset(f->book_by_locate, 0xff, LOCATES * sizeof(uint32_t));
	memset(f->symbol_by_locate, 0, LOCATES * sizeof(uint64_t));
	for (uint32_t i = 0; i < f->n_books; i++) {
		struct md_book *b = &f->books[i];
		b->unsound = 0;
		b->trading_state = 0;
		b->reg_sho = 0;
		b->last_px = 0;
		b->last_qty = 0;
		b->dirty = 1;
	}
	f->stale &= (uint8_t)~(OMS_STALE_NO_SESSION | OMS_STALE_GAP | OMS_STALE_END);
	publish_all(f);
}

/* After a packet: a recovery that has caught up ends, one whose answer
 * has arrived asks for the next part. */
static void recovery_step(struct oms_feed *f)
{
	if (!(f->stale & OMS_STALE_GAP) || !f->cfg.retrans_ip)
		return;
	if (f->expected >= f->highest) {
		f->requesting = 0;
		f->stats.event[OMS_FEED_EV_RECOVERIES]++;
		set_stale(f, OMS_STALE_GAP, 0);
		return;
	}
	if (f->expected >= f->req_end)
		send_request(f);
}

uint32_t oms_feed_process_packet(struct oms_feed *f, const uint8_t *p, uint32_t len,
				 uint64_t now_ns)
{
	f->now = now_ns;
	if (len < MOLD_HLEN) {
		drop(f, OMS_FEED_DROP_MOLD_TRUNCATED);
		return f->tx_count;
	}
	uint64_t seq = rd_be64(p + MOLD_OFF_SEQ);
	uint16_t count = rd_be16(p + MOLD_OFF_COUNT);

	if (seq >= MOLD_SEQ_LIMIT) {
		drop(f, OMS_FEED_DROP_MOLD_BAD_SEQ);
		return f->tx_count;
	}
	f->stats.event[OMS_FEED_EV_PACKETS]++;
	if (!f->have_session || memcmp(f->session, p + MOLD_OFF_SESSION, MOLD_SESSION_LEN))
		new_session(f, p + MOLD_OFF_SESSION);
	f->last_rx = now_ns;
	set_stale(f, OMS_STALE_QUIET, 0);

	if (count == MOLD_COUNT_HEARTBEAT || count == MOLD_COUNT_END_OF_SESSION) {
		/* both carry the next sequence number the server will use */
		if (count == MOLD_COUNT_HEARTBEAT)
			f->stats.event[OMS_FEED_EV_HEARTBEATS]++;
		else
			f->stats.event[OMS_FEED_EV_END_OF_SESSION]++;
		if (seq > f->expected)
			gap_to(f, seq);
		if (count == MOLD_COUNT_END_OF_SESSION)
			set_stale(f, OMS_STALE_END, 1);
		recovery_step(f);
		return f->tx_count;
	}

	uint32_t off = MOLD_HLEN, ahead = MOLD_HLEN;
	const uint8_t *q1 = NULL, *q2 = NULL;
	if (count > 1) {
		peek_block(p, len, &ahead); /* message 0, the first to apply */
		q1 = peek_block(p, len, &ahead);
		if (q1)
			prefetch_slot(f, q1);
		q2 = q1 ? peek_block(p, len, &ahead) : NULL;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (q1) {
			/* the order one message ahead, the index slot two ahead */
			prefetch_order(f, q1);
			if (q2)
				prefetch_slot(f, q2);
			q1 = q2;
			q2 = q1 ? peek_block(p, len, &ahead) : NULL;
		}
		if (off + MOLD_BLOCK_HLEN > len) {
			drop(f, OMS_FEED_DROP_MOLD_BAD_BLOCK);
			break;
		}
		uint32_t mlen = rd_be16(p + off);
		if (off + MOLD_BLOCK_HLEN + mlen > len) {
			drop(f, OMS_FEED_DROP_MOLD_BAD_BLOCK);
			break;
		}
		const uint8_t *m = p + off + MOLD_BLOCK_HLEN;
		uint64_t s = seq + i;
		off += MOLD_BLOCK_HLEN + mlen;
		if (s < f->expected) {
			drop(f, OMS_FEED_DROP_DUPLICATE);
			continue;
		}
		if (s > f->expected) {
			if (seq + count > f->highest)
				f->highest = seq + count;
			gap_to(f, s);
			if (f->cfg.retrans_ip) {
				/* applied in order only: these come back
				 * with the retransmission */
				f->stats.drop[OMS_FEED_DROP_AHEAD] += count - i;
				break;
			}
		}
		f->msg_seq = s;
		apply_msg(f, m, mlen);
		f->expected = s + 1;
	}
	if (f->expected > f->highest)
		f->highest = f->expected;
	recovery_step(f);
	return f->tx_count;
}

/* ---- frames and timers ---- */

static void timers(struct oms_feed *f)
{
	if (f->cfg.stale_after_ns && f->have_session && !(f->stale & OMS_STALE_QUIET) &&
	    f->now >= f->last_rx + f->cfg.stale_after_ns) {
		f->stats.event[OMS_FEED_EV_QUIET]++;
		set_stale(f, OMS_STALE_QUIET, 1);
	}
	if (f->requesting && f->now >= f->req_ns + f->cfg.retransmit_ns)
		send_request(f);
}

uint64_t oms_feed_next_deadline(const struct oms_feed *f)
{
	uint64_t t = UINT64_MAX;

	if (f->cfg.stale_after_ns && f->have_session && !(f->stale & OMS_STALE_QUIET))
		t = f->last_rx + f->cfg.stale_after_ns;
	if (f->requesting && f->req_ns + f->cfg.retransmit_ns < t)
		t = f->req_ns + f->cfg.retransmit_ns;
	return t;
}

/* The frame's MoldUDP64 payload, or a drop reason: the group's multicast
 * (from its source, for SSM) or a retransmission unicast to us from the
 * re-request server. */
static int classify(struct oms_feed *f, const uint8_t *frame, uint32_t len,
		    struct net_udp_view *v)
{
	int verify = !(f->cfg.checksum_offload & OMS_CSUM_RX_VERIFIED);
	int r = net_parse_udp_opt(frame, len, f->cfg.group_ip, verify, v);

	if (r == OMS_OK) {
		if (v->dst_port != f->cfg.group_port)
			return OMS_FEED_DROP_WRONG_PORT;
		if (f->cfg.source_ip && v->src_ip != f->cfg.source_ip)
			return OMS_FEED_DROP_WRONG_SOURCE;
		return -1;
	}
	if (r == OMS_DROP_NOT_FOR_US)
		r = net_parse_udp_opt(frame, len, f->cfg.ip, verify, v);
	if (r == OMS_DROP_NOT_FOR_US)
		return OMS_FEED_DROP_WRONG_GROUP;
	if (r != OMS_OK) {
		f->stats.net_drop[r]++;
		return OMS_FEED_DROP_NET;
	}
	if (v->dst_port != f->cfg.port)
		return OMS_FEED_DROP_WRONG_PORT;
	if (!f->cfg.retrans_ip || v->src_ip != f->cfg.retrans_ip)
		return OMS_FEED_DROP_WRONG_SOURCE;
	return -1;
}

uint32_t oms_feed_process(struct oms_feed *f, const uint8_t *const *frames,
			  const uint16_t *lens, uint32_t n, uint64_t now_ns)
{
	f->now = now_ns;
	timers(f);
	for (uint32_t i = 0; i < n; i++) {
		struct net_udp_view v;
		f->stats.event[OMS_FEED_EV_FRAMES_IN]++;
		int r = classify(f, frames[i], lens[i], &v);
		if (r >= 0) {
			drop(f, r);
			continue;
		}
		oms_feed_process_packet(f, v.payload, v.payload_len, now_ns);
	}
	return f->tx_count;
}

/* ---- the rest of the API ---- */

const uint8_t *oms_feed_tx_buf(const struct oms_feed *f)
{
	return f->tx_buf;
}

const uint16_t *oms_feed_tx_lens(const struct oms_feed *f)
{
	return f->tx_lens;
}

uint32_t oms_feed_tx_count(const struct oms_feed *f)
{
	return f->tx_count;
}

void oms_feed_tx_clear(struct oms_feed *f)
{
	f->tx_count = 0;
}

const struct oms_tob *oms_feed_tob(const struct oms_feed *f, uint32_t symbol_index)
{
	if (symbol_index >= f->cfg.max_symbols || f->book_by_index[symbol_index] == MD_NIL)
		return NULL;
	return &f->tobs[symbol_index];
}

int oms_feed_halted(const struct oms_feed *f, uint32_t symbol_index)
{
	if (symbol_index >= f->cfg.max_symbols)
		return 0;
	return __atomic_load_n(&f->tobs[symbol_index].halted, __ATOMIC_RELAXED);
}

const struct oms_feed_stats *oms_feed_stats(const struct oms_feed *f)
{
	return &f->stats;
}

uint32_t oms_feed_stale(const struct oms_feed *f)
{
	return f->stale;
}

uint64_t oms_feed_expected_seq(const struct oms_feed *f)
{
	return f->expected;
}

uint32_t oms_feed_live_orders(const struct oms_feed *f)
{
	return f->t.live_orders;
}

static int level_cmp_bid(const void *a, const void *b)
{
	int64_t x = ((const struct oms_level_view *)a)->px, y = ((const struct oms_level_view *)b)->px;
	return (x < y) - (x > y);
}

static int level_cmp_ask(const void *a, const void *b)
{
	return level_cmp_bid(b, a);
}

uint32_t oms_feed_levels(const struct oms_feed *f, uint32_t symbol_index, uint8_t side,
			 struct oms_level_view *out, uint32_t max)
{
	if (symbol_index >= f->cfg.max_symbols || f->book_by_index[symbol_index] == MD_NIL)
		return 0;
	const struct md_side *h = &f->books[f->book_by_index[symbol_index]].side[side == 'S'];

	if (h->n > max || !h->n)
		return h->n; /* not filled: ask again with room for them all */
	for (uint32_t i = 0; i < h->n; i++) {
		const struct md_level *l = &f->t.levels[h->heap[i]];
		out[i] = (struct oms_level_view){.px = l->px, .qty = qty32(l->qty), .orders = l->orders};
	}
	qsort(out, h->n, sizeof(*out), side == 'S' ? level_cmp_ask : level_cmp_bid);
	return h->n;
}
