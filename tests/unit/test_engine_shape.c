/* Unit tests of shape inference at load (src/engine/shape.c): outputs that the model leaves
 * undeclared get their shapes with the symbolic batch dim ("batch", "batch*seq", "seq-1"),
 * shape arithmetic (Shape -> Gather -> Concat -> Reshape) is followed, contradictions are
 * refused at load naming the node, and what cannot be known is left to run time. */
#include "engine/engine.h"
#include "engine/model_internal.h"
#include "engine_model_builder.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value info whose dims < 0 are symbolic, named by syms[i]. */
static Onnx__ValueInfoProto *vsym(const char *name, int dtype, int ndim, const int64_t *dims,
                                  const char *const *syms) {
    Onnx__ValueInfoProto *v = vinfo(name, dtype, ndim, dims);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) v->type->tensor_type->shape->dim[i]->dim_param = str(syms[i]);
    }
    return v;
}

/* An output with no type information at all, as many exporters leave intermediate values. */
static Onnx__ValueInfoProto *vbare(const char *name) {
    Onnx__ValueInfoProto *v = track(malloc(sizeof *v));
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = str(name);
    return v;
}

static float *zeros(size_t n) {
    return track(calloc(n + 1, sizeof(float)));
}

static void set_int(Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static const char *const batch_syms[] = {"batch", "seq"};

/* x[batch,64] -> Gemm(64->32) -> Relu -> Gemm(32->k2) -> y; k1 is the first layer's K (64 for a
 * consistent model); y declared with no shape when bare. */
static void spec_mlp(spec_t *s, int64_t k1, int64_t k2, bool bare) {
    memset(s, 0, sizeof *s);
    static const int64_t dx[] = {-1, 64};
    int64_t w1[] = {32, k1}, b1[] = {32}, w2[] = {k2, 32}, b2[] = {k2};
    s->inputs[s->n_inputs++] = vsym("x", SL_DT_FLOAT, 2, dx, batch_syms);
    s->inits[s->n_inits++] = tensor_f("w1", 2, w1, zeros((size_t)(32 * k1)), (size_t)(32 * k1));
    s->inits[s->n_inits++] = tensor_f("b1", 1, b1, zeros(32), 32);
    s->inits[s->n_inits++] = tensor_f("w2", 2, w2, zeros((size_t)(32 * k2)), (size_t)(32 * k2));
    s->inits[s->n_inits++] = tensor_f("b2", 1, b2, zeros((size_t)k2), (size_t)k2);
    Onnx__NodeProto *g1 = node("Gemm", "fc1", "x,w1,b1", "h");
    set_int(g1, "transB", 1);
    s->nodes[s->n_nodes++] = g1;
    s->nodes[s->n_nodes++] = node("Relu", "relu1", "h", "r");
    Onnx__NodeProto *g2 = node("Gemm", "fc2", "r,w2,b2", "y");
    set_int(g2, "transB", 1);
    s->nodes[s->n_nodes++] = g2;
    if (bare) {
        s->outputs[s->n_outputs++] = vbare("y");
    } else {
        static const int64_t dy[] = {-1, 5};
        s->outputs[s->n_outputs++] = vsym("y", SL_DT_FLOAT, 2, dy, batch_syms);
    }
}

/* ---- tests ---- */

static void test_output_gets_batch_shape(void **state) {
    spec_t s;
    spec_mlp(&s, 64, 10, true);
    sl_model_t *m = spec_load_ok(&s, NULL);
    const sl_value_info_t *y = sl_model_output(m, 0);
    assert_int_equal(y->dtype, SL_DT_FLOAT);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->dims[0], -1);
    assert_non_null(y->dim_name[0]);
    assert_string_equal(y->dim_name[0], "batch");
    assert_int_equal(y->dims[1], 10);
    assert_null(y->dim_name[1]);
    /* And the declared shape holds at run time, for any batch. */
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    static float xd[7 * 64];
    for (int64_t b = 1; b <= 7; b += 6) {
        sl_tensor_t x = {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {b, 64}, .data = xd}, out;
        assert_int_equal(sl_run_exec(r, &x, 1, &out, 1, &err), SL_ENG_OK);
        assert_int_equal(out.ndim, 2);
        assert_int_equal(out.dims[0], b);
        assert_int_equal(out.dims[1], 10);
    }
    sl_run_free(r);
    sl_model_free(m);
}

static void test_contradiction_refused_at_load(void **state) {
    spec_t s;
    spec_mlp(&s, 32, 10, true); /* fc1's weights want K = 32, x has 64 columns */
    spec_load_fail(&s, SL_ENG_ESHAPE, "node 'fc1' (Gemm)");
    spec_mlp(&s, 32, 10, true);
    sl_model_t *m = NULL;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "64")); /* what it got and what it expected */
    assert_non_null(strstr(err.msg, "32"));
    builder_reset();
}

static void test_declared_output_contradiction(void **state) {
    spec_t s;
    spec_mlp(&s, 64, 10, false); /* y declared [batch, 5]; the graph computes [batch, 10] */
    spec_load_fail(&s, SL_ENG_ESHAPE, "output 'y': dim 1 is declared 5, but the graph computes 10");
}

/* x[batch,seq,8]: Reshape to [-1, 8] gives [batch*seq, 8]; Shape -> Gather(0) -> Unsqueeze ->
 * Concat([.., -1]) -> Reshape gives [batch, 8*seq]; Slice(1:) on axis 1 gives [batch, seq-1, 8];
 * NonZero's output is left to run time. */
static void test_symbolic_expressions(void **state) {
    spec_t s;
    memset(&s, 0, sizeof s);
    static const int64_t dx[] = {-1, -1, 8}, d1[] = {1}, d2[] = {2}, d0[] = {0};
    static const int64_t shp[] = {-1, 8}, minus1[] = {-1}, zero[] = {0}, one[] = {1},
                         big[] = {INT64_MAX};
    s.inputs[s.n_inputs++] = vsym("x", SL_DT_FLOAT, 3, dx, batch_syms);
    s.inits[s.n_inits++] = tensor_i64("shp", 1, d2, shp, 2);
    s.inits[s.n_inits++] = tensor_i64("m1", 1, d1, minus1, 1);
    s.inits[s.n_inits++] = tensor_i64("zero", 0, d0, zero, 1);
    s.inits[s.n_inits++] = tensor_i64("zero1", 1, d1, zero, 1);
    s.inits[s.n_inits++] = tensor_i64("one", 1, d1, one, 1);
    s.inits[s.n_inits++] = tensor_i64("big", 1, d1, big, 1);
    s.nodes[s.n_nodes++] = node("Reshape", "flat", "x,shp", "y1");
    s.nodes[s.n_nodes++] = node("Shape", "shape", "x", "sh");
    s.nodes[s.n_nodes++] = node("Gather", "first", "sh,zero", "b");
    s.nodes[s.n_nodes++] = node("Unsqueeze", "unsq", "b,zero1", "b1");
    Onnx__NodeProto *cat = node("Concat", "cat", "b1,m1", "shp2");
    set_int(cat, "axis", 0);
    s.nodes[s.n_nodes++] = cat;
    s.nodes[s.n_nodes++] = node("Reshape", "rows", "x,shp2", "y2");
    s.nodes[s.n_nodes++] = node("Slice", "tail", "x,one,big,one", "y3");
    s.nodes[s.n_nodes++] = node("NonZero", "nz", "x", "y4");
    s.outputs[s.n_outputs++] = vbare("y1");
    s.outputs[s.n_outputs++] = vbare("y2");
    s.outputs[s.n_outputs++] = vbare("y3");
    s.outputs[s.n_outputs++] = vbare("y4");
    sl_model_t *m = spec_load_ok(&s, NULL);
    const sl_value_info_t *y1 = sl_model_output(m, 0), *y2 = sl_model_output(m, 1),
                          *y3 = sl_model_output(m, 2), *y4 = sl_model_output(m, 3);
    assert_int_equal(y1->ndim, 2);
    assert_int_equal(y1->dims[0], -1);
    assert_string_equal(y1->dim_name[0], "batch*seq");
    assert_int_equal(y1->dims[1], 8);
    assert_int_equal(y2->ndim, 2);
    assert_string_equal(y2->dim_name[0], "batch");
    assert_int_equal(y2->dims[1], -1);
    assert_string_equal(y2->dim_name[1], "8*seq");
    assert_int_equal(y3->ndim, 3);
    assert_string_equal(y3->dim_name[0], "batch");
    assert_string_equal(y3->dim_name[1], "seq-1");
    assert_int_equal(y3->dims[2], 8);
    /* NonZero's shape depends on the values: left to run time. */
    assert_int_equal(y4->ndim, -1);
    /* Every dim evaluates to what a run computes. */
    const sl_sshape_t *s1 = &m->shapes->v[m->output_ids[0]];
    int64_t sym[SL_SYM_MAX] = {3, 5};
    assert_int_equal(sl_sdim_eval(&s1->dims[0], sym), 15);
    const sl_sshape_t *s3 = &m->shapes->v[m->output_ids[2]];
    assert_int_equal(sl_sdim_eval(&s3->dims[1], sym), 4);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    static float xd[3 * 5 * 8];
    sl_tensor_t x = {.dtype = SL_DT_FLOAT, .ndim = 3, .dims = {3, 5, 8}, .data = xd}, out[4];
    assert_int_equal(sl_run_exec(r, &x, 1, out, 4, &err), SL_ENG_OK);
    assert_int_equal(out[0].dims[0], 15);
    assert_int_equal(out[1].dims[1], 40);
    assert_int_equal(out[2].dims[1], 4);
    sl_run_free(r);
    sl_model_free(m);
}

/* Dims that differ only by name may be equal at run time: not a contradiction. */
static void test_distinct_symbols_not_refused(void **state) {
    spec_t s;
    memset(&s, 0, sizeof s);
    static const int64_t dx[] = {-1, 4};
    static const char *const a[] = {"n"}, *const b[] = {"m"};
    s.inputs[s.n_inputs++] = vsym("x", SL_DT_FLOAT, 2, dx, a);
    s.inputs[s.n_inputs++] = vsym("z", SL_DT_FLOAT, 2, dx, b);
    s.nodes[s.n_nodes++] = node("Add", "add", "x,z", "y");
    s.outputs[s.n_outputs++] = vbare("y");
    sl_model_t *m = spec_load_ok(&s, NULL);
    assert_int_equal(sl_model_output(m, 0)->ndim, -1); /* left to run time */
    sl_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_gets_batch_shape),
        cmocka_unit_test(test_contradiction_refused_at_load),
        cmocka_unit_test(test_declared_output_contradiction),
        cmocka_unit_test(test_symbolic_expressions),
        cmocka_unit_test(test_distinct_symbols_not_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
