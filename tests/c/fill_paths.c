/* The fill model's two evaluators side by side (tests/test_fill_model.py):
 * cdefs/fill_model.c built with AVX-512 (the venues as vector lanes) and
 * built without it (SCALAR_PREFIX: its scalar path, symbols renamed
 * scalar_*), both linked here and given the same model and orders.
 *
 * stdin: three uint32 (sizeof the model, order and quote structs, checked
 * against this build's), the model as filled by control/fill_artefact.py
 * to_c (not sealed), then records: uint32 n, one order, n quotes.
 * stdout: per record, n int32 from each evaluator then two uint32, the
 * number each says answered.  Exit 1 on a malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fill_model.h"

int scalar_oms_fill_model_seal(struct oms_fill_model *m);
uint32_t scalar_oms_fill_probs(const struct oms_fill_model *m, const struct oms_fill_order *o,
			       const struct oms_fill_quote *q, uint32_t n, int32_t *p);

#define MAX_VENUES 64

static int get(void *p, size_t n)
{
	return fread(p, 1, n, stdin) == n ? 0 : -1;
}

int main(void)
{
	static struct oms_fill_model vec, sca;
	static struct oms_fill_quote q[MAX_VENUES];
	struct oms_fill_order o;
	uint32_t sizes[3], n;
	int32_t pv[MAX_VENUES], ps[MAX_VENUES];

	if (get(sizes, sizeof(sizes)) || sizes[0] != sizeof(vec) || sizes[1] != sizeof(o) ||
	    sizes[2] != sizeof(q[0]) || get(&vec, sizeof(vec)))
		return fprintf(stderr, "bad header or model\n"), 1;
	sca = vec;
	if (oms_fill_model_seal(&vec) || scalar_oms_fill_model_seal(&sca))
		return fprintf(stderr, "model refused\n"), 1;
	while (fread(&n, sizeof(n), 1, stdin) == 1) {
		if (n > MAX_VENUES || get(&o, sizeof(o)) || get(q, n * sizeof(q[0])))
			return fprintf(stderr, "bad record\n"), 1;
		uint32_t av = oms_fill_probs(&vec, &o, q, n, pv);
		uint32_t as = scalar_oms_fill_probs(&sca, &o, q, n, ps);
		fwrite(pv, sizeof(pv[0]), n, stdout);
		fwrite(ps, sizeof(ps[0]), n, stdout);
		fwrite(&av, sizeof(av), 1, stdout);
		fwrite(&as, sizeof(as), 1, stdout);
	}
	return 0;
}
