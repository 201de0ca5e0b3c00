/* The fill-probability model the benchmarks time (bench/route_bench.c,
 * bench/fill_bench.c). */
#ifndef OMS_FILL_BENCH_MODEL_H
#define OMS_FILL_BENCH_MODEL_H

#include <stdint.h>
#include <string.h>

#include "fill_model.h"

/* A model shaped like a trained one (control/fill_train.py): its 22 tables
 * (TABLES), its fixed bin edges (EDGES), quantile-like edges spanning
 * hundreds for the sizes and the fill ratio, and its ranges (bounded where
 * training bounds them, open-ended for sizes, latency, ages and time); its
 * values do not change its cost. */
static void bench_fill_model(struct oms_fill_model *m, uint32_t venues)
{
	static const int64_t edges[OMS_FILL_FEATURES][9] = {
		{1, 2}, {1}, {0, 1, 2, 3}, {-4, -3, -2, -1, 0, 1, 2}, {2, 3, 4, 5},
		{12, 25, 50, 100, 200, 400, 800}, {12, 25, 50, 100, 200, 400, 800},
		{-60, -30, -10, 10, 30, 60}, {100, 1000, 5000, 10000, 20000, 40000, 80000},
		{350, 420, 470, 500, 530, 580, 650}, {0}, {1}, {30, 60, 90, 120}};
	const uint8_t n_edges[OMS_FILL_FEATURES] = {(uint8_t)(venues - 1), 1, 4, 7, 4, 7, 7, 6, 7,
							    7, 0, 1, 4};
	static const int64_t lo[OMS_FILL_FEATURES] = {0, 0, -50, -60, 0, 0, 0, -100, 0, 0, 0, 0, 0};
	const int64_t hi[OMS_FILL_FEATURES] = {venues - 1, 1, 50, 40, 60, 0, 0, 100, 0,
						      0, 0, 1, 0};
	static const uint8_t tables[22][2] = {
		{0, 0xFF}, {1, 0xFF}, {2, 0xFF}, {3, 0xFF}, {4, 0xFF}, {5, 0xFF}, {6, 0xFF},
		{7, 0xFF}, {8, 0xFF}, {11, 0xFF}, {0, 2}, {0, 3}, {0, 11}, {0, 5}, {0, 6},
		{0, 8}, {11, 3}, {2, 5}, {3, 6}, {2, 4}, {11, 6}, {2, 7}};
	uint32_t off = 0;

	memset(m, 0, sizeof(*m));
	m->id = 0xbe4c4;
	m->n_venues = venues;
	for (uint32_t v = 0; v < OMS_FILL_MAX_VENUES; v++)
		m->slot[v] = v < venues ? (uint16_t)v : OMS_FILL_NO_SLOT;
	for (int k = 0; k < OMS_FILL_FEATURES; k++) {
		m->lo[k] = lo[k];
		m->hi[k] = hi[k] ? hi[k] : INT64_MAX - 1; /* 0: open-ended */
		m->n_edges[k] = n_edges[k];
		memcpy(m->edges[k], edges[k], n_edges[k] * sizeof(int64_t));
	}
	for (int t = 0; t < 22; t++) {
		uint8_t a = tables[t][0], b = tables[t][1];
		uint16_t nb = b == OMS_FILL_NO_B ? 1 : m->n_edges[b] + 1u;

		m->tables[t] = (struct oms_fill_table){.offset = off, .nb_b = nb, .a = a, .b = b};
		off += (m->n_edges[a] + 1u) * nb;
	}
	m->n_tables = 22;
	for (uint32_t i = 0; i < off; i++)
		m->w[i] = (int32_t)(i * 2654435761u % 40000) - 20000;
	for (int j = 0; j < OMS_FILL_LUT; j++)
		m->lut[j] = (uint32_t)(((uint64_t)j << OMS_FILL_P_Q) / (OMS_FILL_LUT - 1));
}

#endif
