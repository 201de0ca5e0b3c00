#include <stdlib.h>
#include <string.h>

#include "orders.h"

uint32_t index_hash(uint64_t key, uint32_t aux)
{
	uint64_t h = key ^ ((uint64_t)aux * 0x9E3779B97F4A7C15ull);

	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 29;
	return (uint32_t)h;
}

static int index_init(struct order_index *ix, uint32_t capacity)
{
	/* at most half full, so linear probes stay short */
	uint32_t n = pow2_at_least(capacity * 2u);
	ix->slots = alloc_lines((size_t)n * sizeof(*ix->slots));
	if (!ix->slots)
		return -1;
	memset(ix->slots, 0, (size_t)n * sizeof(*ix->slots));
	ix->mask = n - 1;
	return 0;
}

uint32_t index_find(const struct order_index *ix, uint64_t key, uint32_t aux)
{
	uint32_t i = index_hash(key, aux) & ix->mask;

	for (;;) {
		const struct order_index_slot *s = &ix->slots[i];
		if (s->slot == 0)
			return ORDER_NIL;
		if (s->key == key && s->aux == aux)
			return s->slot - 1;
		i = (i + 1) & ix->mask;
	}
}

void index_insert(struct order_index *ix, uint64_t key, uint32_t aux,
		  uint32_t o)
{
	uint32_t i = index_hash(key, aux) & ix->mask;

	while (ix->slots[i].slot != 0)
		i = (i + 1) & ix->mask;
	ix->slots[i].key = key;
	ix->slots[i].aux = aux;
	ix->slots[i].slot = o + 1;
}

/* Backward-shift deletion: no tombstones, so lookups never slow down as
 * orders come and go. */
void index_erase(struct order_index *ix, uint64_t key, uint32_t aux)
{
	uint32_t i = index_hash(key, aux) & ix->mask;

	for (;;) {
		struct order_index_slot *s = &ix->slots[i];
		if (s->slot == 0)
			return;
		if (s->key == key && s->aux == aux)
			break;
		i = (i + 1) & ix->mask;
	}
	uint32_t hole = i;
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & ix->mask;
		struct order_index_slot *s = &ix->slots[j];
		if (s->slot == 0)
			break;
		uint32_t home = index_hash(s->key, s->aux) & ix->mask;
		/* move s into the hole unless its home lies cyclically in
		 * (hole, j] */
		if (((j - home) & ix->mask) >= ((j - hole) & ix->mask)) {
			ix->slots[hole] = *s;
			hole = j;
		}
	}
	ix->slots[hole].slot = 0;
}

static int ref_map_init(struct ref_map *m, uint32_t capacity)
{
	/* an order holds at most two refs; 4x keeps laps rare */
	uint32_t n = pow2_at_least(capacity * 4u);
	m->direct = alloc_lines((size_t)n * sizeof(*m->direct));
	if (!m->direct)
		return -1;
	memset(m->direct, 0, (size_t)n * sizeof(*m->direct));
	m->mask = n - 1;
	return index_init(&m->overflow, capacity);
}

uint32_t ref_find(const struct ref_map *m, uint32_t ref, uint32_t venue)
{
	const struct order_index_slot *s = &m->direct[ref_slot(m, ref, venue)];

	if (s->slot && s->key == ref && s->aux == venue)
		return s->slot - 1;
	return index_find(&m->overflow, ref, venue);
}

void ref_insert(struct ref_map *m, uint32_t ref, uint32_t venue, uint32_t o)
{
	struct order_index_slot *s = &m->direct[ref_slot(m, ref, venue)];

	if (s->slot) {
		index_insert(&m->overflow, ref, venue, o);
		return;
	}
	s->key = ref;
	s->aux = venue;
	s->slot = o + 1;
}

void ref_erase(struct ref_map *m, uint32_t ref, uint32_t venue)
{
	struct order_index_slot *s = &m->direct[ref_slot(m, ref, venue)];

	if (s->slot && s->key == ref && s->aux == venue)
		s->slot = 0;
	else
		index_erase(&m->overflow, ref, venue);
}

int order_table_init(struct order_table *t, uint32_t capacity)
{
	memset(t, 0, sizeof(*t));
	t->capacity = capacity;
	t->orders = alloc_lines((size_t)capacity * sizeof(*t->orders));
	t->retired = malloc((size_t)capacity * sizeof(*t->retired));
	if (!t->orders || !t->retired || index_init(&t->by_id, capacity) ||
	    ref_map_init(&t->by_ref, capacity)) {
		order_table_free(t);
		return -1;
	}
	/* touch every page now, not on the first orders */
	memset(t->orders, 0, (size_t)capacity * sizeof(*t->orders));
	memset(t->retired, 0, (size_t)capacity * sizeof(*t->retired));
	return 0;
}

void order_table_free(struct order_table *t)
{
	free(t->orders);
	free(t->retired);
	free(t->by_id.slots);
	free(t->by_ref.direct);
	free(t->by_ref.overflow.slots);
	memset(t, 0, sizeof(*t));
}

uint32_t order_free_slots(const struct order_table *t)
{
	return t->capacity - t->never_used + t->retired_count;
}

/* The victims to come are known, and their keys are in the ring: their
 * index slots are asked for VICTIM_AHEAD evictions early, and the slot the
 * new order will be written into with them. */
#define VICTIM_AHEAD 2

/* A load whose value nothing waits for: unlike a software prefetch, which
 * the CPU may drop when its miss buffers are busy (as they are while a new
 * order's lines are being written), it is always carried out, and
 * out-of-order execution runs on past it until it is back. */
static inline void touch(const void *p)
{
	(void)*(const volatile uint32_t *)p;
}

/* A new order writes every line of its slot (its time stamps reach the
 * fourth): each one not fetched ahead is a store miss, and a few of them
 * fill the store buffer and stall everything behind. */
static inline void prefetch_slot(const struct order *o)
{
	for (size_t l = 0; l < sizeof(*o); l += 64)
		__builtin_prefetch((const char *)o + l, 1);
}

uint32_t order_alloc(struct order_table *t, int *evicted)
{
	*evicted = 0;
	if (t->never_used < t->capacity) {
		if (t->never_used + VICTIM_AHEAD < t->capacity)
			prefetch_slot(&t->orders[t->never_used + VICTIM_AHEAD]);
		return t->never_used++;
	}
	if (t->retired_count == 0)
		return ORDER_NIL;

	const struct retired_order *v = &t->retired[t->retired_head];
	t->retired_head = t->retired_head + 1 == t->capacity ? 0 : t->retired_head + 1;
	t->retired_count--;

	/* a child shares its parent's id but is not found by it */
	if (!v->is_child)
		index_erase(&t->by_id, v->cl_ord_id, v->session);
	ref_erase(&t->by_ref, v->ref, v->venue);
	if (v->pending_ref)
		ref_erase(&t->by_ref, v->pending_ref, v->venue);
	*evicted = 1;
	order_prefetch_victims(t);
	return v->o;
}

void order_prefetch_victims(const struct order_table *t)
{
	if (t->retired_count < VICTIM_AHEAD)
		return;
	uint32_t h = t->retired_head + VICTIM_AHEAD - 1;
	const struct retired_order *v = &t->retired[h >= t->capacity ? h - t->capacity : h];
	if (!v->is_child)
		touch(&t->by_id.slots[index_hash(v->cl_ord_id, v->session) & t->by_id.mask]);
	touch(&t->by_ref.direct[ref_slot(&t->by_ref, v->ref, v->venue)]);
	prefetch_slot(&t->orders[v->o]);
}

void order_retire(struct order_table *t, uint32_t o)
{
	uint32_t tail = t->retired_head + t->retired_count;
	if (tail >= t->capacity) /* a ring: no division a retirement */
		tail -= t->capacity;
	const struct order *od = &t->orders[o];

	t->retired[tail] = (struct retired_order){
		.cl_ord_id = od->cl_ord_id, .session = od->session, .ref = od->ref,
		.pending_ref = od->pending_ref, .o = o, .venue = od->venue, .is_child = od->is_child};
	t->retired_count++;
}
