/* Every kernel in the registry, given every input count its ONNX schema allows, each optional
 * input omitted (NULL) or present, inputs of unexpected kinds and no attributes, must answer
 * with an error or run: never read past its inputs or through a NULL. The loader holds nodes to
 * their schema (schema.c); within it, anything a hostile model can write reaches the kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine/op.h"
#include "engine/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *scratch(sl_kctx_t *k, size_t n) {
    void **slot = k->arena;
    free(*slot);
    *slot = malloc(n ? n : 1);
    return *slot;
}

static void try_op(const sl_op_t *op, int n_in, unsigned null_mask) {
    if (getenv("SL_ARITY_TRACE"))
        fprintf(stderr, "%s/%d n_in=%d mask=%x\n", op->op_type, op->since, n_in, null_mask);
    static float data[64];
    static int64_t idata[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    sl_tensor_t f = {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {2, 2}, .data = data};
    sl_tensor_t i64 = {.dtype = SL_DT_INT64, .ndim = 1, .dims = {2}, .data = idata};
    const sl_tensor_t *in[8];
    for (int i = 0; i < n_in; i++) {
        /* Later inputs are often shapes, axes or indices: alternate the kinds. */
        in[i] = (null_mask >> i) & 1 ? NULL : (i == 0 || i % 2 == 0 ? &f : &i64);
    }
    int ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    sl_node_t node = {.name = "arity",
                      .op_type = op->op_type,
                      .domain = op->domain,
                      .opset = op->since,
                      .n_inputs = n_in,
                      .inputs = ids,
                      .n_outputs = 1,
                      .outputs = ids,
                      .op = op};
    sl_eng_error_t err = {0};
    if (op->prepare && op->prepare(&node, in, &err) != SL_ENG_OK) return;
    sl_tensor_t out[4];
    memset(out, 0, sizeof out);
    if (op->infer(&node, in, n_in, out, 1, &err) == SL_ENG_OK) {
        size_t nb = sl_tensor_nbytes(&out[0]);
        if (nb < (1u << 20)) {
            out[0].data = malloc(nb + 1);
            void *held = NULL;
            sl_kctx_t k = {.scratch = scratch, .arena = &held, .threads = 1, .err = &err};
            op->run(&node, in, n_in, out, 1, &k);
            free(held);
            free(out[0].data);
        }
    }
    if (op->release) op->release(&node);
}

static void test_every_kernel_survives_bad_arity(void **state) {
    const sl_op_t *const tables[] = {sl_ops_elementwise, sl_ops_linalg, sl_ops_shape, sl_ops_reduce,
                                     sl_ops_nn};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        for (const sl_op_t *op = tables[t]; op->op_type; op++) {
            const sl_schema_t *sc = sl_schema_find(op->domain, op->op_type, op->since);
            /* Kernels for operator versions newer than python3-onnx's schemas (opset 18+) can
             * only be reached by models the loader refuses. */
            if (!sc) continue;
            int max = sc->max_inputs < 5 ? sc->max_inputs : 5;
            for (int n_in = sc->min_inputs; n_in <= max; n_in++) {
                for (unsigned mask = 0; mask < (1u << n_in); mask++) {
                    bool ok = true;
                    for (int i = 0; i < n_in && ok; i++) {
                        bool req = i < sc->n_formal ? ((sc->required >> i) & 1u) != 0
                                                    : sc->last_variadic != 0;
                        if (req && ((mask >> i) & 1)) ok = false;
                    }
                    if (ok) try_op(op, n_in, mask);
                }
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kernel_survives_bad_arity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
