/* Order-level books: pools, indices and per-side heaps (book.h). */
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "orders.h" /* pow2_at_least, id_hash, alloc_lines */

static inline uint32_t order_home(const struct md_tables *t, uint64_t ref)
{
	return id_hash(ref) & t->order_mask;
}

static inline uint64_t order_entry(uint64_t ref, uint32_t oi)
{
	return (uint64_t)id_hash(ref) << 32 | oi;
}

static inline uint32_t level_home(const struct md_tables *t, uint32_t book_side, int64_t px)
{
	return id_hash((uint64_t)px ^ ((uint64_t)book_side * 0xff51afd7ed558ccdull)) &
	       t->level_mask;
}

/* Linear probing with backward-shift deletion: no tombstones, so probe
 * lengths stay short however long the day runs.  An entry moves back to
 * the hole unless its home lies cyclically in (hole, its slot]. */
static inline int stays(uint32_t hole, uint32_t j, uint32_t home)
{
	return hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
}

static void level_ix_delete(struct md_tables *t, uint32_t slot)
{
	uint32_t *ix = t->level_ix, mask = t->level_mask, i = slot, j = slot;

	for (;;) {
		j = (j + 1) & mask;
		uint32_t e = ix[j];
		if (e == MD_NIL)
			break;
		if (!stays(i, j, level_home(t, t->levels[e].book_side, t->levels[e].px))) {
			ix[i] = e;
			i = j;
		}
	}
	ix[i] = MD_NIL;
}

static void order_ix_delete(struct md_tables *t, uint32_t slot)
{
	uint64_t *ix = t->order_ix;
	uint32_t mask = t->order_mask, i = slot, j = slot;

	for (;;) {
		j = (j + 1) & mask;
		uint64_t e = ix[j];
		if (e == ORDER_IX_EMPTY)
			break;
		if (!stays(i, j, (uint32_t)(e >> 32) & mask)) {
			ix[i] = e;
			i = j;
		}
	}
	ix[i] = ORDER_IX_EMPTY;
}

int book_tables_init(struct md_tables *t, uint32_t max_orders, uint32_t max_levels,
		     struct md_book *books, uint32_t n_books)
{
	memset(t, 0, sizeof(*t));
	t->max_orders = max_orders;
	t->max_levels = max_levels;
	t->order_mask = pow2_at_least(max_orders * 2) - 1;
	t->level_mask = t->order_mask;
	t->orders = alloc_lines((size_t)max_orders * sizeof(struct md_order));
	t->order_ix = alloc_lines((size_t)(t->order_mask + 1) * sizeof(uint64_t));
	t->levels = alloc_lines((size_t)max_orders * sizeof(struct md_level));
	t->level_ix = alloc_lines((size_t)(t->level_mask + 1) * sizeof(uint32_t));
	t->heap_pool = alloc_lines((size_t)n_books * 2 * max_levels * sizeof(uint32_t) + 64);
	if (!t->orders || !t->order_ix || !t->levels || !t->level_ix || !t->heap_pool)
		return -1;
	for (uint32_t b = 0; b < n_books; b++)
		for (int s = 0; s < 2; s++)
			books[b].side[s].heap = t->heap_pool + ((size_t)b * 2 + (size_t)s) * max_levels;
	book_tables_reset(t, books, n_books);
	return 0;
}

void book_tables_free(struct md_tables *t)
{
	free(t->orders);
	free(t->order_ix);
	free(t->levels);
	free(t->level_ix);
	free(t->heap_pool);
	memset(t, 0, sizeof(*t));
}

void book_tables_reset(struct md_tables *t, struct md_book *books, uint32_t n_books)
{
	memset(t->order_ix, 0xff, (size_t)(t->order_mask + 1) * sizeof(uint64_t));
	memset(t->level_ix, 0xff, (size_t)(t->level_mask + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < t->max_orders; i++) {
		t->orders[i].level = i + 1 < t->max_orders ? i + 1 : MD_NIL;
		t->levels[i].next_free = i + 1 < t->max_orders ? i + 1 : MD_NIL;
	}
	t->order_free = 0;
	t->level_free = 0;
	t->live_orders = 0;
	for (uint32_t b = 0; b < n_books; b++) {
		books[b].side[0].n = 0;
		books[b].side[1].n = 0;
	}
}

uint32_t book_find_order(const struct md_tables *t, uint64_t ref)
{
	uint64_t tag = order_entry(ref, 0) >> 32;

	for (uint32_t i = (uint32_t)tag & t->order_mask;; i = (i + 1) & t->order_mask) {
		uint64_t e = t->order_ix[i];
		if (e == ORDER_IX_EMPTY)
			return MD_NIL;
		if (e >> 32 == tag && t->orders[(uint32_t)e].ref == ref)
			return (uint32_t)e;
	}
}

/* ---- heaps: bids keep the highest price on top, asks the lowest ---- */

static inline int better(int side, int64_t a, int64_t b)
{
	return side ? a < b : a > b;
}

static void heap_place(struct md_tables *t, struct md_side *h, uint32_t pos, uint32_t li)
{
	h->heap[pos] = li;
	t->levels[li].heap_pos = pos;
}

static void heap_up(struct md_tables *t, struct md_side *h, int side, uint32_t pos)
{
	uint32_t li = h->heap[pos];
	int64_t px = t->levels[li].px;

	while (pos) {
		uint32_t parent = (pos - 1) / 2;
		uint32_t pl = h->heap[parent];
		if (!better(side, px, t->levels[pl].px))
			break;
		heap_place(t, h, pos, pl);
		pos = parent;
	}
	heap_place(t, h, pos, li);
}

static void heap_down(struct md_tables *t, struct md_side *h, int side, uint32_t pos)
{
	uint32_t li = h->heap[pos];
	int64_t px = t->levels[li].px;

	for (;;) {
		uint32_t c = 2 * pos + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && better(side, t->levels[h->heap[c + 1]].px, t->levels[h->heap[c]].px))
			c++;
		if (!better(side, t->levels[h->heap[c]].px, px))
			break;
		heap_place(t, h, pos, h->heap[c]);
		pos = c;
	}
	heap_place(t, h, pos, li);
}

static void heap_remove(struct md_tables *t, struct md_side *h, int side, uint32_t pos)
{
	uint32_t last = h->heap[--h->n];

	if (pos == h->n)
		return;
	heap_place(t, h, pos, last);
	if (pos && better(side, t->levels[last].px, t->levels[h->heap[(pos - 1) / 2]].px))
		heap_up(t, h, side, pos);
	else
		heap_down(t, h, side, pos);
}

/* ---- levels ---- */

static uint32_t level_get(struct md_tables *t, struct md_book *books, uint32_t book,
			  uint8_t side, int64_t px)
{
	uint32_t bs = book * 2 + side;
	uint32_t i = level_home(t, bs, px);

	for (;; i = (i + 1) & t->level_mask) {
		uint32_t e = t->level_ix[i];
		if (e == MD_NIL)
			break;
		if (t->levels[e].px == px && t->levels[e].book_side == bs)
			return e;
	}
	struct md_side *h = &books[book].side[side];
	if (h->n >= t->max_levels || t->level_free == MD_NIL)
		return MD_NIL;
	uint32_t li = t->level_free;
	struct md_level *l = &t->levels[li];
	t->level_free = l->next_free;
	l->px = px;
	l->qty = 0;
	l->orders = 0;
	l->book_side = bs;
	t->level_ix[i] = li;
	h->heap[h->n] = li;
	l->heap_pos = h->n++;
	heap_up(t, h, side, l->heap_pos);
	return li;
}

static void level_release(struct md_tables *t, struct md_book *books, uint32_t li)
{
	struct md_level *l = &t->levels[li];
	uint32_t book = l->book_side / 2, side = l->book_side & 1;
	uint32_t i = level_home(t, l->book_side, l->px);

	while (t->level_ix[i] != li)
		i = (i + 1) & t->level_mask;
	level_ix_delete(t, i);
	heap_remove(t, &books[book].side[side], (int)side, l->heap_pos);
	l->next_free = t->level_free;
	t->level_free = li;
}

/* ---- orders ---- */

int book_add(struct md_tables *t, struct md_book *books, uint32_t book, uint64_t ref,
	     uint8_t side, uint32_t qty, int64_t px)
{
	if (t->order_free == MD_NIL)
		return MD_FULL_ORDERS;
	uint32_t li = level_get(t, books, book, side, px);
	if (li == MD_NIL)
		return MD_FULL_LEVELS;
	uint32_t oi = t->order_free;
	struct md_order *o = &t->orders[oi];
	t->order_free = o->level;
	o->ref = ref;
	o->px = px;
	o->qty = qty;
	o->level = li;
	o->book = book;
	o->side = side;
	t->levels[li].qty += qty;
	t->levels[li].orders++;
	uint32_t i = order_home(t, ref);
	while (t->order_ix[i] != ORDER_IX_EMPTY)
		i = (i + 1) & t->order_mask;
	t->order_ix[i] = order_entry(ref, oi);
	t->live_orders++;
	return MD_OK;
}

void book_remove(struct md_tables *t, struct md_book *books, uint32_t oi)
{
	struct md_order *o = &t->orders[oi];
	struct md_level *l = &t->levels[o->level];
	uint32_t i = order_home(t, o->ref);

	l->qty -= o->qty;
	if (--l->orders == 0)
		level_release(t, books, o->level);
	while ((uint32_t)t->order_ix[i] != oi)
		i = (i + 1) & t->order_mask;
	order_ix_delete(t, i);
	o->level = t->order_free;
	t->order_free = oi;
	t->live_orders--;
}

void book_reduce(struct md_tables *t, struct md_book *books, uint32_t oi, uint32_t qty)
{
	struct md_order *o = &t->orders[oi];

	if (qty >= o->qty) {
		book_remove(t, books, oi);
		return;
	}
	o->qty -= qty;
	t->levels[o->level].qty -= qty;
}
