/* The order table: a pre-allocated pool of orders with two open-addressing
 * indices over it, one by (session, client order id) for strategy
 * messages and one by (venue, UserRefNum) for venue messages.  One writer
 * (the worker that owns the core); nothing here allocates after init. */
#ifndef OMS_ORDERS_H
#define OMS_ORDERS_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "oms_core.h"

#define ORDER_NIL UINT32_MAX

/* Sizes of the open-addressing tables: a power of two, at least 16. */
static inline uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

/* Fibonacci hashing of small ids into those tables. */
static inline uint32_t id_hash(uint64_t v)
{
	v *= 0x9E3779B97F4A7C15ull;
	return (uint32_t)(v >> 32);
}

/* Cache-line aligned allocation (C11 aligned_alloc wants a size that is a
 * multiple of the alignment). */
static inline void *alloc_lines(size_t size)
{
	if (size >= (2u << 20)) {
		size_t r = (size + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
		void *p = aligned_alloc(2u << 20, r);
		if (p)
			madvise(p, r, MADV_HUGEPAGE);
		return p;
	}
	return aligned_alloc(64, (size + 63) & ~(size_t)63);
}

struct order {
	/* first cache line: what every message touches */
	uint64_t cl_ord_id;
	int64_t price;
	int64_t pending_price;
	uint32_t session; /* index into the session table */
	uint32_t account;
	uint32_t qty;
	uint32_t pending_qty;
	uint32_t cum_qty;
	uint32_t leaves_qty;
	uint32_t ref;
	uint32_t pending_ref;
	uint16_t venue; /* index into the venue table */
	uint8_t state;
	uint8_t prev_state;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t flags;
	uint8_t acked;
	uint8_t answered; /* the venue said anything about it (latency monitor) */
	uint8_t n_children; /* split across venues: child[0..n_children) */
	uint8_t is_child;   /* one venue's part of a split order (parent) */
	/* the session's list of live orders, in creation order */
	uint32_t live_prev;
	uint32_t live_next;
	uint64_t symbol_key_; /* the 8 symbol bytes as sent */
	/* pre-trade risk (risk.h): where its exposure is accounted and what
	 * it holds there now */
	uint32_t risk_acct;  /* account index */
	uint32_t risk_pos;   /* position index */
	uint32_t instrument; /* instrument index */
	uint32_t res_qty;
	int64_t risk_px;     /* market orders: the reference price at entry */
	int64_t res_notional;
	uint8_t res_live;
	/* its outcome went into the venue's recent fill ratio (venue.c) */
	uint8_t fill_counted;
	/* a split order (docs/semantics.md "Splitting"): the parent is what the
	 * strategy sees; its children are what the venues see.  A child slot
	 * may be evicted once terminal, so a parent checks that child[k] still
	 * names it before using it (split_child_of). */
	uint32_t parent;
	uint32_t child[OMS_SPLIT_MAX];
	/* the rest: timestamps, read by tools */
	uint64_t state_ts[OMS_ST_MAX];
} __attribute__((aligned(64)));

struct order_index_slot {
	uint64_t key;
	uint32_t aux;  /* session or venue index */
	uint32_t slot; /* order number + 1; 0 marks an empty slot */
};

struct order_index {
	struct order_index_slot *slots;
	uint32_t mask;
};

/* UserRefNums are issued in sequence, so (venue, ref) goes straight to
 * slot ref mod size: recently issued refs - the busy ones - share a few
 * cache lines and need no probing.  A ref whose slot is still held by an
 * older order's ref (one that lived through a whole lap) goes to the
 * overflow index instead. */
struct ref_map {
	struct order_index_slot *direct;
	uint32_t mask;
	struct order_index overflow;
};

/* A terminal order waiting to be evicted: its slot and the keys its
 * eviction erases from the indexes, copied when it retired (a terminal
 * order's keys never change).  Eviction then reads this ring, in order,
 * instead of the order's own line, long since gone from the cache. */
struct retired_order {
	uint64_t cl_ord_id;
	uint32_t session;
	uint32_t ref;
	uint32_t pending_ref;
	uint32_t o;
	uint16_t venue;
	uint8_t is_child;
};

struct order_table {
	struct order *orders;
	uint32_t capacity;
	uint32_t never_used; /* orders[never_used..] have never been used */
	/* terminal orders, oldest first, waiting to be evicted for reuse */
	struct retired_order *retired;
	uint32_t retired_head;
	uint32_t retired_count;
	uint32_t live;
	struct order_index by_id;
	struct ref_map by_ref;
};

int order_table_init(struct order_table *t, uint32_t capacity);
void order_table_free(struct order_table *t);

/* A slot for a new order, evicting the oldest terminal order if needed;
 * ORDER_NIL when every slot holds a live order.  `evicted` is set to 1
 * when an old order had to go. */
uint32_t order_alloc(struct order_table *t, int *evicted);
/* Slots a new order can take: never used, or terminal (evictable). */
uint32_t order_free_slots(const struct order_table *t);
/* Ask the caches for what the next evictions will touch. */
void order_prefetch_victims(const struct order_table *t);
/* The order became terminal: queue it for reuse. */
void order_retire(struct order_table *t, uint32_t o);

uint32_t ref_find(const struct ref_map *m, uint32_t ref, uint32_t venue);
void ref_insert(struct ref_map *m, uint32_t ref, uint32_t venue, uint32_t o);
void ref_erase(struct ref_map *m, uint32_t ref, uint32_t venue);

uint32_t index_find(const struct order_index *ix, uint64_t key, uint32_t aux);
uint32_t index_hash(uint64_t key, uint32_t aux);

static inline uint32_t ref_slot(const struct ref_map *m, uint32_t ref, uint32_t venue)
{
	/* venues far apart, so their busy regions don't overlap */
	return (ref + venue * 0x9E3779B9u) & m->mask;
}

/* Where a lookup of (key, aux) starts: to be fetched ahead of it. */
static inline const void *index_home(const struct order_index *ix, uint64_t key, uint32_t aux)
{
	return &ix->slots[index_hash(key, aux) & ix->mask];
}

static inline const void *ref_home(const struct ref_map *m, uint32_t ref, uint32_t venue)
{
	return &m->direct[ref_slot(m, ref, venue)];
}
void index_insert(struct order_index *ix, uint64_t key, uint32_t aux,
		  uint32_t o);
void index_erase(struct order_index *ix, uint64_t key, uint32_t aux);

static inline int state_is_terminal(uint8_t s)
{
	return s == OMS_ST_FILLED || s == OMS_ST_CANCELED ||
	       s == OMS_ST_REJECTED || s == OMS_ST_EXPIRED;
}

static inline int state_is_pending(uint8_t s)
{
	return s == OMS_ST_PENDING_NEW || s == OMS_ST_PENDING_REPLACE ||
	       s == OMS_ST_PENDING_CANCEL;
}

#endif
