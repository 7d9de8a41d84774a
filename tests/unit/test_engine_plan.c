/* Unit tests of constant folding at load (src/engine/fold.c) and of the executor's memory plan
 * (src/engine/plan.c): which nodes fold and which do not, that folded models compute the same
 * results, that a node failing to fold still fails at run time with its name, and that buffer
 * reuse lowers the run's high-water mark without ever handing a live value's buffer to another
 * (graph outputs, values read much later, values read twice, outputs nobody reads). */
#include "engine/engine.h"
#include "engine/model_internal.h"
#include "engine/npy.h"
#include "engine_model_builder.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SOURCE_DIR
#define SOURCE_DIR "."
#endif

#define ALIGNED(n) (((size_t)(n) + 63) & ~(size_t)63)

static const sl_value_t *value(const sl_model_t *m, const char *name) {
    for (size_t i = 0; i < m->n_values; i++) {
        if (strcmp(m->values[i].name, name) == 0) return &m->values[i];
    }
    fail_msg("no value '%s'", name);
    return NULL;
}

static sl_tensor_t ftensor(float *data, int64_t n) {
    sl_tensor_t t = {.dtype = SL_DT_FLOAT, .ndim = 1, .dims = {n}, .data = data};
    return t;
}

static const int64_t d1[] = {1};
static const int64_t d3[] = {3};
static const int64_t dN[] = {-1};

/* ---- folding ---- */

/* b = Relu(w) + w is all constants: both nodes fold, only y = x + b runs. */
static void test_fold_chain(void **state) {
    static const float w[3] = {-1, 2, -3};
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d3);
    s.inits[s.n_inits++] = tensor_f("w", 1, d3, w, 3);
    s.nodes[s.n_nodes++] = node("Relu", "relu_w", "w", "a");
    s.nodes[s.n_nodes++] = node("Add", "add_w", "a,w", "b");
    s.nodes[s.n_nodes++] = node("Add", "add_x", "x,b", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d3);
    sl_model_t *m = spec_load_ok(&s, NULL);
    assert_int_equal(m->n_folded, 2);
    assert_int_equal(m->n_nodes, 1);
    assert_string_equal(m->nodes[0].name, "add_x");
    const sl_value_t *b = value(m, "b");
    assert_int_equal(b->kind, SL_VAL_CONST);
    assert_int_equal(b->producer, -1);
    assert_int_equal(b->last_use, 0);
    const float want_b[3] = {-1, 4, -3};
    assert_memory_equal(b->tensor.data, want_b, sizeof want_b);

    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[3] = {10, 20, 30};
    sl_tensor_t x = ftensor(xs, 3), y;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
        const float want[3] = {9, 24, 27};
        assert_memory_equal(y.data, want, sizeof want);
    }
    sl_run_free(r);
    sl_model_free(m);
}

/* Shape(x) depends on the run's input: nothing downstream of it folds. */
static void test_no_fold_from_inputs(void **state) {
    static const int64_t one[1] = {1};
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, dN);
    s.inits[s.n_inits++] = tensor_i64("one", 1, d1, one, 1);
    s.nodes[s.n_nodes++] = node("Shape", "shape", "x", "s");
    s.nodes[s.n_nodes++] = node("Add", "plus1", "s,one", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_INT64, 1, d1);
    sl_model_t *m = spec_load_ok(&s, NULL);
    assert_int_equal(m->n_folded, 0);
    assert_int_equal(m->n_nodes, 2);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[5] = {0};
    sl_tensor_t x = ftensor(xs, 5), y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(((int64_t *)y.data)[0], 6);
    x = ftensor(xs, 2);
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(((int64_t *)y.data)[0], 3);
    sl_run_free(r);
    sl_model_free(m);
}

/* Dropout is left alone (its mode could make it random), an output over the folding bound is
 * left to run time, a small one folds. */
static void test_fold_skips_impure_and_oversized(void **state) {
    static const float w[3] = {1, 2, 3};
    const int64_t big[1] = {(int64_t)(SL_FOLD_MAX_TENSOR_BYTES / sizeof(float)) + 1};
    const int64_t small[1] = {16};
    spec_t s = {0};
    s.inits[s.n_inits++] = tensor_f("w", 1, d3, w, 3);
    s.inits[s.n_inits++] = tensor_i64("big_shape", 1, d1, big, 1);
    s.inits[s.n_inits++] = tensor_i64("small_shape", 1, d1, small, 1);
    s.nodes[s.n_nodes++] = node("Dropout", "drop", "w", "d");
    s.nodes[s.n_nodes++] = node("ConstantOfShape", "fill_big", "big_shape", "fb");
    s.nodes[s.n_nodes++] = node("ConstantOfShape", "fill_small", "small_shape", "fs");
    s.outputs[s.n_outputs++] = vinfo("d", SL_DT_FLOAT, 1, d3);
    s.outputs[s.n_outputs++] = vinfo("fb", SL_DT_FLOAT, 1, big);
    s.outputs[s.n_outputs++] = vinfo("fs", SL_DT_FLOAT, 1, small);
    sl_model_t *m = spec_load_ok(&s, NULL);
    assert_int_equal(m->n_folded, 1);
    assert_int_equal(m->n_nodes, 2);
    assert_string_equal(m->nodes[0].name, "drop");
    assert_string_equal(m->nodes[1].name, "fill_big");
    const sl_value_t *fs = value(m, "fs");
    assert_int_equal(fs->kind, SL_VAL_CONST);
    assert_int_equal(fs->tensor.dims[0], 16);
    assert_int_equal(value(m, "fb")->kind, SL_VAL_NODE);
    sl_model_free(m);
}

/* A node that fails while folding is not folded (no crash, no half-made constant); its shapes
 * cannot work either, so the load refuses it naming the node. */
static void test_fold_failure_refused_at_load(void **state) {
    static const float w[3] = {1, 2, 3};
    static const int64_t two[1] = {2};
    spec_t s = {0};
    s.inits[s.n_inits++] = tensor_f("w", 1, d3, w, 3);
    s.inits[s.n_inits++] = tensor_i64("shape", 1, d1, two, 1);
    s.nodes[s.n_nodes++] = node("Reshape", "bad_reshape", "w,shape", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, two);
    /* Folding leaves it to run time; shape inference, right after, finds it cannot run at all
     * and refuses the model at load with the kernel's own message. */
    sl_model_t *m = NULL;
    sl_eng_error_t err = {0};
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_ESHAPE);
    assert_null(m);
    if (!strstr(err.msg, "node 'bad_reshape' (Reshape)")) fail_msg("message: %s", err.msg);
    builder_reset();
}

/* A graph output made by a folded node is returned like an initializer. */
static void test_folded_graph_output(void **state) {
    static const float w[3] = {-1, 2, -3};
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d3);
    s.inits[s.n_inits++] = tensor_f("w", 1, d3, w, 3);
    s.nodes[s.n_nodes++] = node("Relu", "relu_w", "w", "cw");
    s.nodes[s.n_nodes++] = node("Neg", "neg_x", "x", "nx");
    s.outputs[s.n_outputs++] = vinfo("cw", SL_DT_FLOAT, 1, d3);
    s.outputs[s.n_outputs++] = vinfo("nx", SL_DT_FLOAT, 1, d3);
    sl_model_t *m = spec_load_ok(&s, NULL);
    assert_int_equal(m->n_folded, 1);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[3] = {1, 2, 3};
    sl_tensor_t x = ftensor(xs, 3), y[2];
    assert_int_equal(sl_run_exec(r, &x, 1, y, 2, &err), SL_ENG_OK);
    const float want0[3] = {0, 2, 0}, want1[3] = {-1, -2, -3};
    assert_memory_equal(y[0].data, want0, sizeof want0);
    assert_memory_equal(y[1].data, want1, sizeof want1);
    sl_run_free(r);
    sl_model_free(m);
}

/* ---- memory plan ---- */

/* Ten Relu in a row on [1000]: two buffers take turns instead of one per node. */
static void test_chain_peak(void **state) {
    static const int64_t d1000[1] = {1000};
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, dN);
    char in[8] = "x", out[8], name[8];
    for (int i = 0; i < 10; i++) {
        snprintf(out, sizeof out, i == 9 ? "y" : "r%d", i);
        snprintf(name, sizeof name, "relu%d", i);
        s.nodes[s.n_nodes++] = node("Relu", name, in, out);
        memcpy(in, out, sizeof in);
    }
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d1000);
    sl_model_t *m = spec_load_ok(&s, NULL);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float *xs = malloc(1000 * sizeof *xs);
    assert_non_null(xs);
    for (int i = 0; i < 1000; i++)
        xs[i] = (float)(i % 2 ? i : -i);
    sl_tensor_t x = ftensor(xs, 1000), y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    const size_t one = ALIGNED(1000 * sizeof(float));
    assert_int_equal(sl_run_demand_bytes(r), 10 * one);
    assert_int_equal(sl_run_peak_bytes(r), 2 * one);
    for (int i = 0; i < 1000; i++)
        assert_true(((float *)y.data)[i] == (i % 2 ? (float)i : 0.0f));
    /* Warm runs make the same plan in the same blocks; a smaller batch needs less. */
    size_t blocks = sl_run_arena_blocks(r);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
        assert_int_equal(sl_run_peak_bytes(r), 2 * one);
        assert_int_equal(sl_run_arena_blocks(r), blocks);
    }
    x = ftensor(xs, 10);
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(sl_run_peak_bytes(r), 2 * ALIGNED(10 * sizeof(float)));
    assert_int_equal(sl_run_arena_blocks(r), blocks);
    free(xs);
    sl_run_free(r);
    sl_model_free(m);
}

/* Values that must keep their buffers while others come and go:
 *   a = Relu(x), read again by the last Mul after three Adds that could reuse a's buffer;
 *   o1 = a + 1 is a graph output that later nodes read, and must survive the run;
 *   (s1, s2) = Split(x): s2 is read by nobody; t = s1 + s1 reads one value twice. */
static void test_live_values_keep_their_buffers(void **state) {
    static const float one[1] = {1};
    static const int64_t d4[1] = {4}, d2[1] = {2};
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d4);
    s.inits[s.n_inits++] = tensor_f("one", 1, d1, one, 1);
    s.nodes[s.n_nodes++] = node("Relu", "relu", "x", "a");
    s.nodes[s.n_nodes++] = node("Add", "add1", "a,one", "o1");
    s.nodes[s.n_nodes++] = node("Add", "add2", "o1,one", "b");
    s.nodes[s.n_nodes++] = node("Add", "add3", "b,one", "c");
    s.nodes[s.n_nodes++] = node("Mul", "mul", "a,c", "o2");
    s.nodes[s.n_nodes++] = node("Split", "split", "x", "s1,s2");
    s.nodes[s.n_nodes++] = node("Add", "twice", "s1,s1", "t");
    s.nodes[s.n_nodes++] = node("Neg", "neg", "t", "o3");
    s.outputs[s.n_outputs++] = vinfo("o1", SL_DT_FLOAT, 1, d4);
    s.outputs[s.n_outputs++] = vinfo("o2", SL_DT_FLOAT, 1, d4);
    s.outputs[s.n_outputs++] = vinfo("o3", SL_DT_FLOAT, 1, d2);
    sl_model_t *m = spec_load_ok(&s, NULL);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[4] = {1, -2, 3, 4};
    sl_tensor_t x = ftensor(xs, 4), y[3];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sl_run_exec(r, &x, 1, y, 3, &err), SL_ENG_OK);
        const float w1[4] = {2, 1, 4, 5}, w2[4] = {4, 0, 18, 28}, w3[2] = {-2, 4};
        assert_memory_equal(y[0].data, w1, sizeof w1);
        assert_memory_equal(y[1].data, w2, sizeof w2);
        assert_int_equal(y[2].dims[0], 2);
        assert_memory_equal(y[2].data, w3, sizeof w3);
        /* Three outputs can share nothing; every other buffer was reused at least once. */
        assert_true(y[0].data != y[1].data && y[1].data != y[2].data && y[0].data != y[2].data);
        assert_true(sl_run_peak_bytes(r) < sl_run_demand_bytes(r));
        assert_true(sl_run_peak_bytes(r) <= 6 * ALIGNED(16));
    }
    sl_run_free(r);
    sl_model_free(m);
}

/* The transformer example: its many small shape tensors and activations share buffers; the
 * high-water mark is a fraction of the no-reuse total and the output matches the reference. */
static void test_transformer_peak(void **state) {
    const char *path = SOURCE_DIR "/examples/models/transformer_sentiment/model.onnx";
    const char *in_path = SOURCE_DIR "/examples/models/transformer_sentiment/reference/"
                                     "input.tokens.npy";
    const char *out_path = SOURCE_DIR "/examples/models/transformer_sentiment/reference/"
                                      "output.logits.npy";
    sl_eng_error_t err = {0};
    sl_model_t *m = NULL;
    assert_int_equal(sl_model_load_file(path, NULL, &m, &err), SL_ENG_OK);
    sl_tensor_t in, want, got;
    assert_int_equal(sl_npy_read_file(in_path, 0, &in, &err), SL_ENG_OK);
    assert_int_equal(sl_npy_read_file(out_path, 0, &want, &err), SL_ENG_OK);
    sl_run_t *r;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sl_run_exec(r, &in, 1, &got, 1, &err), SL_ENG_OK);
        assert_int_equal(sl_tensor_numel(&got), sl_tensor_numel(&want));
        for (int64_t i = 0; i < sl_tensor_numel(&want); i++) {
            float a = ((float *)got.data)[i], b = ((float *)want.data)[i];
            assert_true(a - b < 1e-3f && b - a < 1e-3f);
        }
        assert_true(sl_run_peak_bytes(r) * 3 < sl_run_demand_bytes(r));
    }
    free(in.data);
    free(want.data);
    sl_run_free(r);
    sl_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_chain),
        cmocka_unit_test(test_no_fold_from_inputs),
        cmocka_unit_test(test_fold_skips_impure_and_oversized),
        cmocka_unit_test(test_fold_failure_refused_at_load),
        cmocka_unit_test(test_folded_graph_output),
        cmocka_unit_test(test_chain_peak),
        cmocka_unit_test(test_live_values_keep_their_buffers),
        cmocka_unit_test(test_transformer_peak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
