#include <stdlib.h>
#include <string.h>

#include "orders.h"

static uint32_t index_hash(uint64_t key, uint32_t aux)
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
	uint32_t n = 16;

	/* at most half full, so linear probes stay short */
	while (n < capacity * 2u)
		n <<= 1;
	ix->slots = aligned_alloc(64, (size_t)n * sizeof(*ix->slots));
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

int order_table_init(struct order_table *t, uint32_t capacity)
{
	memset(t, 0, sizeof(*t));
	t->capacity = capacity;
	t->orders = aligned_alloc(64, (size_t)capacity * sizeof(*t->orders));
	t->retired = malloc((size_t)capacity * sizeof(*t->retired));
	if (!t->orders || !t->retired || index_init(&t->by_id, capacity) ||
	    index_init(&t->by_ref, capacity * 2u)) {
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
	free(t->by_ref.slots);
	memset(t, 0, sizeof(*t));
}

uint32_t order_alloc(struct order_table *t, int *evicted)
{
	*evicted = 0;
	if (t->never_used < t->capacity)
		return t->never_used++;
	if (t->retired_count == 0)
		return ORDER_NIL;

	uint32_t o = t->retired[t->retired_head];
	t->retired_head = (t->retired_head + 1) % t->capacity;
	t->retired_count--;

	struct order *old = &t->orders[o];
	index_erase(&t->by_id, old->cl_ord_id, old->session);
	index_erase(&t->by_ref, old->ref, old->venue);
	if (old->pending_ref)
		index_erase(&t->by_ref, old->pending_ref, old->venue);
	*evicted = 1;
	return o;
}

void order_retire(struct order_table *t, uint32_t o)
{
	uint32_t tail = (t->retired_head + t->retired_count) % t->capacity;

	t->retired[tail] = o;
	t->retired_count++;
}
