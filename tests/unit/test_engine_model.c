/* Unit tests of the engine's model loading (src/engine/model.c, graph.c): models built in memory
 * with protobuf-c and packed, then loaded; bad files (truncated, garbage), bad graphs (cycle,
 * missing input, duplicate output), what the engine cannot run (unknown op, opset too new,
 * external data, subgraphs, FP16) and the inspect report. */
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
#include <unistd.h>

static const int64_t d23[] = {-1, 3};

/* x[N,3] + b[3] -> y, with b also listed as a (defaulted) graph input. */
static void spec_add(spec_t *s) {
    memset(s, 0, sizeof *s);
    static const float bias[] = {1, 2, 3};
    static const int64_t d3[] = {3};
    s->inputs[s->n_inputs++] = vinfo("x", SL_DT_FLOAT, 2, d23);
    s->inputs[s->n_inputs++] = vinfo("b", SL_DT_FLOAT, 1, d3);
    s->inits[s->n_inits++] = tensor_f("b", 1, d3, bias, 3);
    s->nodes[s->n_nodes++] = node("Add", "add0", "x,b", "y");
    s->outputs[s->n_outputs++] = vinfo("y", SL_DT_FLOAT, 2, d23);
}

/* ---- tests ---- */

static void test_load_describes_model(void **state) {
    spec_t s;
    spec_add(&s);
    sl_model_t *m = NULL;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_OK);
    assert_non_null(m);
    /* b has an initializer: not an input the caller must feed. */
    assert_int_equal(sl_model_num_inputs(m), 1);
    assert_int_equal(sl_model_num_outputs(m), 1);
    const sl_value_info_t *x = sl_model_input(m, 0);
    assert_string_equal(x->name, "x");
    assert_int_equal(x->dtype, SL_DT_FLOAT);
    assert_int_equal(x->ndim, 2);
    assert_int_equal(x->dims[0], -1);
    assert_string_equal(x->dim_name[0], "N");
    assert_int_equal(x->dims[1], 3);
    assert_null(x->dim_name[1]);
    assert_null(sl_model_input(m, 1));
    assert_string_equal(sl_model_output(m, 0)->name, "y");
    assert_int_equal(sl_model_opset(m, ""), 13);
    assert_int_equal(sl_model_opset(m, "ai.onnx"), 13);
    assert_int_equal(sl_model_opset(m, "ai.onnx.ml"), -1);
    assert_string_equal(sl_model_producer(m), "unit-test");
    assert_int_equal(sl_model_ir_version(m), 8);
    assert_int_equal(sl_model_input_index(m, "x"), 0);
    assert_int_equal(sl_model_input_index(m, "b"), -1);
    assert_int_equal(sl_model_output_index(m, "y"), 0);
    assert_int_equal(m->n_params, 3);
    sl_model_free(m);
    builder_reset();
}

static void test_truncated_and_garbage(void **state) {
    spec_t s;
    spec_add(&s);
    size_t len;
    uint8_t *buf = spec_pack(&s, &len);
    sl_model_t *m = (sl_model_t *)1;
    sl_eng_error_t err = {0};
    /* Cut inside the graph: protobuf cannot parse it. */
    assert_int_equal(sl_model_load_memory(buf, len - 7, NULL, &m, &err), SL_ENG_EPARSE);
    assert_null(m);
    assert_non_null(strstr(err.msg, "not a valid ONNX model"));
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    assert_int_equal(sl_model_load_memory(junk, sizeof junk, NULL, &m, &err), SL_ENG_EPARSE);
    assert_non_null(strstr(err.msg, "not a valid ONNX model"));
    /* Valid protobuf that is no model: empty, or a text file that happens to parse. */
    assert_int_equal(sl_model_load_memory("", 0, NULL, &m, &err), SL_ENG_EPARSE);
    assert_non_null(strstr(err.msg, "ir_version"));
    sl_model_opts_t o = {.max_file_bytes = 16};
    assert_int_equal(sl_model_load_memory(buf, len, &o, &m, &err), SL_ENG_ELIMIT);
    assert_non_null(strstr(err.msg, "max_file_bytes"));
    assert_int_equal(sl_model_load_file("/nonexistent/model.onnx", NULL, &m, &err), SL_ENG_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/model.onnx"));
    assert_int_equal(sl_model_load_file("/tmp", NULL, &m, &err), SL_ENG_EIO);
    builder_reset();
}

static void test_cycle(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Add", "head", "x,c", "a");
    s.nodes[s.n_nodes++] = node("Relu", "loop1", "a", "b");
    s.nodes[s.n_nodes++] = node("Relu", "loop2", "b", "c");
    s.nodes[s.n_nodes++] = node("Relu", "tail", "c", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    sl_model_t *m = (sl_model_t *)1;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_EGRAPH);
    assert_null(m);
    assert_non_null(strstr(err.msg, "cycle"));
    /* The node named is on the cycle, not merely downstream of it (tail). */
    assert_true(strstr(err.msg, "'head'") || strstr(err.msg, "'loop1'") ||
                strstr(err.msg, "'loop2'"));
    builder_reset();
}

static void test_missing_input_duplicate_output(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Add", "add0", "x,nowhere", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "input 'nowhere' is not a graph input");

    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r1", "x", "y");
    s.nodes[s.n_nodes++] = node("Relu", "r2", "x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "node 'r2' (Relu): output 'y' is already");

    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r1", "x", "x");
    s.outputs[s.n_outputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "output 'x' is already a graph input");

    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r1", "x", "y");
    s.outputs[s.n_outputs++] = vinfo("z", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "graph output 'z' is not produced");

    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r1", "x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "graph input 'x' is listed twice");
}

static void test_unsupported(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("FrobnicateX", "f", "x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED,
                   "op 'FrobnicateX' (domain '', opset 13) is not supported");

    /* A custom domain, imported. */
    memset(&s, 0, sizeof s);
    s.extra_domain = "com.example";
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "x", "y");
    s.nodes[0]->domain = str("com.example");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "op 'Relu' (domain 'com.example', opset 1)");

    /* ... and not imported. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "x", "y");
    s.nodes[0]->domain = str("com.example");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "domain 'com.example', which the model does not import");

    spec_add(&s);
    s.opset = 18;
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "ai.onnx opset 18");

    spec_add(&s);
    s.ir_version = 99;
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "IR version 99");

    /* External data. */
    spec_add(&s);
    s.inits[0]->n_float_data = 0;
    s.inits[0]->has_data_location = 1;
    s.inits[0]->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "external");

    /* Subgraph attributes (If/Loop/Scan). */
    spec_add(&s);
    Onnx__AttributeProto *a =
        attr_new(s.nodes[0], "body", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    Onnx__GraphProto *g = track(malloc(sizeof *g));
    *g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    a->g = g;
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "subgraph");

    /* FP16 inputs. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("h", SL_DT_FLOAT16, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "h", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT16, 1, d);
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "input 'h' has element type float16");

    /* Node count limit. */
    spec_add(&s);
    s.nodes[s.n_nodes++] = node("Relu", "r", "y", "z");
    size_t len;
    uint8_t *buf = spec_pack(&s, &len);
    sl_model_opts_t o = {.max_nodes = 1};
    sl_model_t *m = (sl_model_t *)1;
    sl_eng_error_t err;
    assert_int_equal(sl_model_load_memory(buf, len, &o, &m, &err), SL_ENG_ELIMIT);
    assert_non_null(strstr(err.msg, "2 nodes"));
    /* Initializer size limit. */
    o = (sl_model_opts_t){.max_tensor_bytes = 8};
    assert_int_equal(sl_model_load_memory(buf, len, &o, &m, &err), SL_ENG_ELIMIT);
    assert_null(m);
    builder_reset();
}

static void test_node_arity(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", ",x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "node 'r' (Relu): has 2 inputs; opset 13 allows 1 to 1");

    /* Nodes are held to their ONNX schema: a required input left empty, too few inputs. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Add", "sum", ",x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH,
                   "node 'sum' (Add): input 0 is required by the operator but its name is empty");
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Gemm", "fc", "x", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "node 'fc' (Gemm): has 1 inputs; opset 13 allows 2 to 3");

    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "x", "y");
    s.nodes[s.n_nodes++] = node("Relu", "sink", "y", NULL);
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    spec_load_fail(&s, SL_ENG_EGRAPH, "node 'sink' (Relu): has no outputs");

    /* Trailing omitted inputs and outputs are dropped: the kernel sees what is there. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "x,,", "y,");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    sl_model_t *m;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_OK);
    assert_int_equal(m->nodes[0].n_inputs, 1);
    assert_int_equal(m->nodes[0].n_outputs, 1);
    sl_model_free(m);
    builder_reset();
}

static void test_constant_folded(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {3};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    Onnx__NodeProto *c = node("Constant", "c", NULL, "k");
    Onnx__AttributeProto *a =
        attr_new(c, "value_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    static float vals[] = {10, 20, 30};
    a->floats = vals;
    a->n_floats = 3;
    /* The Constant comes after its consumer in the file: order is the loader's job. */
    s.nodes[s.n_nodes++] = node("Add", "add", "x,k", "y");
    s.nodes[s.n_nodes++] = c;
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    sl_model_t *m;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_OK);
    assert_int_equal(m->n_nodes, 1); /* the Constant does not run */
    int k = -1;
    for (size_t i = 0; i < m->n_values; i++) {
        if (strcmp(m->values[i].name, "k") == 0) k = (int)i;
    }
    assert_true(k >= 0);
    assert_int_equal(m->values[k].kind, SL_VAL_CONST);
    assert_int_equal(m->values[k].tensor.ndim, 1);
    assert_int_equal(m->values[k].tensor.dims[0], 3);
    assert_true(((float *)m->values[k].tensor.data)[2] == 30.0f);
    sl_model_free(m);
    builder_reset();

    /* A string constant is refused, naming the node. */
    memset(&s, 0, sizeof s);
    c = node("Constant", "sc", NULL, "y");
    a = attr_new(c, "value_string", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)"hi";
    a->s.len = 2;
    s.nodes[s.n_nodes++] = c;
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_STRING, 0, NULL);
    spec_load_fail(&s, SL_ENG_EUNSUPPORTED, "node 'sc' (Constant)");
}

static void test_topological_order_and_last_use(void **state) {
    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    /* File order is reversed against data flow. */
    s.nodes[s.n_nodes++] = node("Add", "n3", "b,x", "y");
    s.nodes[s.n_nodes++] = node("Relu", "n2", "a", "b");
    s.nodes[s.n_nodes++] = node("Relu", "n1", "x", "a");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    sl_model_t *m;
    sl_eng_error_t err;
    assert_int_equal(spec_load(&s, NULL, &m, &err), SL_ENG_OK);
    assert_int_equal(m->n_nodes, 3);
    assert_string_equal(m->nodes[0].name, "n1");
    assert_string_equal(m->nodes[1].name, "n2");
    assert_string_equal(m->nodes[2].name, "n3");
    for (size_t i = 0; i < m->n_values; i++) {
        const sl_value_t *v = &m->values[i];
        if (strcmp(v->name, "x") == 0) assert_int_equal(v->last_use, 2);
        if (strcmp(v->name, "a") == 0) {
            assert_int_equal(v->last_use, 1);
            assert_int_equal(v->producer, 0);
        }
        if (strcmp(v->name, "y") == 0) assert_true(v->is_output);
    }
    sl_model_free(m);
    builder_reset();
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_inspect(void **state) {
    char path[] = "/tmp/sl_test_inspect_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    spec_t s = {0};
    static const int64_t d[] = {2};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r1", "x", "a");
    s.nodes[s.n_nodes++] = node("NoSuchOp", "bad", "a", "b");
    s.nodes[s.n_nodes++] = node("Relu", "r2", "b", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 1, d);
    size_t len;
    uint8_t *buf = spec_pack(&s, &len);
    write_file(path, buf, len);
    sl_model_report_t r;
    sl_model_t *m = (sl_model_t *)1;
    sl_eng_error_t err;
    assert_int_equal(sl_model_inspect(path, &r, &m, &err), SL_ENG_OK);
    assert_null(m);
    assert_false(r.runnable);
    assert_non_null(strstr(r.why_not, "op 'NoSuchOp' (domain '', opset 13) is not supported"));
    assert_int_equal(r.n_nodes, 3);
    assert_int_equal(r.n_ops, 2);
    assert_string_equal(r.ops[0].op_type, "NoSuchOp");
    assert_false(r.ops[0].supported);
    assert_string_equal(r.ops[1].op_type, "Relu");
    assert_int_equal(r.ops[1].count, 2);
    assert_true(r.ops[1].supported);
    /* The description is there although the model cannot run, and cannot be run. */
    assert_non_null(r.info);
    assert_int_equal(sl_model_num_inputs(r.info), 1);
    assert_string_equal(sl_model_input(r.info, 0)->name, "x");
    sl_run_t *run = (sl_run_t *)1;
    assert_int_equal(sl_run_new(r.info, &run, &err), SL_ENG_EUNSUPPORTED);
    assert_null(run);
    assert_non_null(strstr(err.msg, "NoSuchOp"));
    sl_model_report_free(&r);
    builder_reset();

    spec_add(&s);
    buf = spec_pack(&s, &len);
    write_file(path, buf, len);
    assert_int_equal(sl_model_inspect(path, &r, &m, &err), SL_ENG_OK);
    assert_true(r.runnable);
    assert_non_null(m);
    assert_ptr_equal(r.info, m);
    assert_int_equal(r.n_initializers, 1);
    assert_int_equal(r.n_params, 3);
    sl_model_report_free(&r);
    sl_model_free(m);
    /* Without model_or_null the report keeps (and frees) the model. */
    assert_int_equal(sl_model_inspect(path, &r, NULL, &err), SL_ENG_OK);
    assert_true(r.runnable);
    sl_model_report_free(&r);

    /* An FP16 input: described with its dtype, not runnable. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("h", SL_DT_FLOAT16, 1, d);
    s.nodes[s.n_nodes++] = node("Relu", "r", "h", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT16, 1, d);
    buf = spec_pack(&s, &len);
    write_file(path, buf, len);
    assert_int_equal(sl_model_inspect(path, &r, &m, &err), SL_ENG_OK);
    assert_false(r.runnable);
    assert_null(m);
    assert_non_null(strstr(r.why_not, "input 'h' has element type float16"));
    assert_int_equal(sl_model_input(r.info, 0)->dtype, SL_DT_FLOAT16);
    assert_true(r.ops[0].supported);
    sl_model_report_free(&r);

    write_file(path, "garbage\xff\xff\xff\xff", 11);
    assert_int_equal(sl_model_inspect(path, &r, &m, &err), SL_ENG_EPARSE);
    unlink(path);
    assert_int_equal(sl_model_inspect(path, &r, &m, &err), SL_ENG_EIO);
    builder_reset();
}

static void test_arena(void **state) {
    sl_arena_t a;
    sl_arena_init(&a, 1024);
    void *p = sl_arena_alloc(&a, 10);
    void *q = sl_arena_alloc(&a, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_true(p != q);
    assert_int_equal((uintptr_t)p % SL_ARENA_ALIGN, 0);
    assert_int_equal((uintptr_t)q % SL_ARENA_ALIGN, 0);
    void *big = sl_arena_alloc(&a, 5000); /* over the block size: a block of its own */
    assert_non_null(big);
    memset(big, 1, 5000);
    assert_int_equal(a.n_blocks, 2);
    sl_arena_mark_t mk = sl_arena_mark(&a);
    assert_non_null(sl_arena_alloc(&a, 2000));
    assert_int_equal(a.n_blocks, 3);
    sl_arena_release(&a, mk);
    sl_arena_reset(&a);
    /* The same sequence again fits the blocks it made the first time. */
    assert_ptr_equal(sl_arena_alloc(&a, 10), p);
    assert_ptr_equal(sl_arena_alloc(&a, 0), q);
    assert_ptr_equal(sl_arena_alloc(&a, 5000), big);
    assert_non_null(sl_arena_alloc(&a, 2000));
    assert_int_equal(a.n_blocks, 3);
    assert_null(sl_arena_alloc(&a, SIZE_MAX - 8));
    sl_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_describes_model),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_missing_input_duplicate_output),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_node_arity),
        cmocka_unit_test(test_constant_folded),
        cmocka_unit_test(test_topological_order_and_last_use),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
