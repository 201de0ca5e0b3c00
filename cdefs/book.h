/* Order-level books of the feed handler (internal to feed.c and book.c).
 *
 * All books of one feed share two pools sized at creation: orders (found by
 * ITCH order reference through an open-addressing index) and price levels
 * (found by (book, side, price) through a second index).  A level exists
 * only while an order rests on it, so there are never more levels than
 * orders.  Each side of each book keeps its levels in a binary heap (best
 * price on top): the best price is read in O(1), a level enters or leaves
 * in O(log n).  Nothing allocates after book_tables_init(). */
#ifndef OMS_BOOK_H
#define OMS_BOOK_H

#include <stdint.h>

#include "feed.h"

#define MD_NIL UINT32_MAX
#define ORDER_IX_EMPTY UINT64_MAX

struct md_order {
	uint64_t ref;
	int64_t px;
	uint32_t qty;
	uint32_t level;
	uint32_t book;
	uint8_t side; /* 0 bid, 1 ask */
};

struct md_level {
	int64_t px;
	uint64_t qty; /* sum over its orders: u32 shares each, many orders */
	uint32_t orders;
	uint32_t heap_pos;
	uint32_t book_side; /* book * 2 + side */
	uint32_t next_free;
};

/* One side of one book: indices of its levels, heap-ordered. */
struct md_side {
	uint32_t *heap;
	uint32_t n;
};

struct md_book {
	struct md_side side[2];
	uint64_t symbol;       /* the 8 ITCH bytes, as loaded */
	uint32_t symbol_index; /* where its top of book is published */
	uint8_t unsound;       /* OMS_STALE_BOOK_FULL */
	uint8_t dirty;         /* top of book to publish */
	uint8_t trading_state;
	uint8_t reg_sho;
	int64_t last_px;
	uint32_t last_qty;
	/* what was published last, to publish changes only */
	int64_t pub_bid_px, pub_ask_px;
	uint32_t pub_bid_qty, pub_ask_qty;
	uint8_t pub_stale;
};

struct md_tables {
	struct md_order *orders;
	/* ref -> order: (hash << 32 | order), ORDER_IX_EMPTY when free.  The
	 * hash lets probes and deletions skip orders that are not the one
	 * sought without touching their cache lines. */
	uint64_t *order_ix;
	uint32_t order_mask;
	uint32_t order_free; /* free list through .level */
	uint32_t live_orders;
	uint32_t max_orders;

	struct md_level *levels;
	uint32_t *level_ix; /* (book_side, px) -> level */
	uint32_t level_mask;
	uint32_t level_free;

	uint32_t *heap_pool;
	uint32_t max_levels; /* per side */
};

enum md_result {
	MD_OK = 0,
	MD_FULL_ORDERS = 1,
	MD_FULL_LEVELS = 2,
};

int book_tables_init(struct md_tables *t, uint32_t max_orders, uint32_t max_levels,
		     struct md_book *books, uint32_t n_books);
void book_tables_free(struct md_tables *t);
/* Empties every book (a new session). */
void book_tables_reset(struct md_tables *t, struct md_book *books, uint32_t n_books);

uint32_t book_find_order(const struct md_tables *t, uint64_t ref);
/* Adds a resting order; MD_OK or the table that is full. */
int book_add(struct md_tables *t, struct md_book *books, uint32_t book, uint64_t ref,
	     uint8_t side, uint32_t qty, int64_t px);
/* Takes `qty` shares off an order (execution or cancel), removing it at 0. */
void book_reduce(struct md_tables *t, struct md_book *books, uint32_t oi, uint32_t qty);
void book_remove(struct md_tables *t, struct md_book *books, uint32_t oi);

/* Software pipelining for a packet's later messages: the index slot of an
 * order reference two messages ahead, the order itself one ahead (its
 * slot fetched by then).  Hints only: nothing changes. */
static inline void book_prefetch_slot(const struct md_tables *t, uint64_t ref)
{
	uint64_t h = ref * 0x9E3779B97F4A7C15ull;
	__builtin_prefetch(&t->order_ix[(uint32_t)(h >> 32) & t->order_mask]);
}

static inline void book_prefetch_order(const struct md_tables *t, uint64_t ref)
{
	uint64_t h = (ref * 0x9E3779B97F4A7C15ull) >> 32;
	uint64_t e = t->order_ix[(uint32_t)h & t->order_mask];
	if (e != ORDER_IX_EMPTY)
		__builtin_prefetch(&t->orders[(uint32_t)e]);
}

static inline const struct md_level *book_best(const struct md_tables *t,
						const struct md_book *b, int side)
{
	return b->side[side].n ? &t->levels[b->side[side].heap[0]] : 0;
}

#endif
