/* Unit tests for gateway/pipeline: the config parser's checks with file:line messages, decoding
 * /v1/predict bodies of every datatype (one object and instances) into model tensors, every error
 * message a client can get, the input hash (stable, blind to extra fields and key order), the
 * sticky-field lookup, and encoding responses (whole rows, scalars, picked elements, shortest
 * floats) with upstream mismatches refused. */
#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"
#include "core/yaml_doc.h"
#include "gateway/pipeline.h"
#include "oip/oip_types.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static const char *const cfg_fraud = "pipelines:\n"
                                     "  fraud:\n"
                                     "    model: fraud_xgboost\n"
                                     "    version: \"1.0.0\"\n"
                                     "    inputs:\n"
                                     "      - tensor: features\n"
                                     "        datatype: FP32\n"
                                     "        fields: [amount, log_amount, hour]\n"
                                     "      - tensor: pixels\n"
                                     "        datatype: FP32\n"
                                     "        field: image\n"
                                     "        length: 4\n"
                                     "      - tensor: f64\n"
                                     "        datatype: FP64\n"
                                     "        fields: [score]\n"
                                     "      - tensor: counts\n"
                                     "        datatype: INT32\n"
                                     "        fields: [n_tx, age]\n"
                                     "      - tensor: ids\n"
                                     "        datatype: INT64\n"
                                     "        fields: [merchant_id]\n"
                                     "      - tensor: flags\n"
                                     "        datatype: BOOL\n"
                                     "        fields: [is_new, is_intl]\n"
                                     "      - tensor: text\n"
                                     "        datatype: BYTES\n"
                                     "        fields: [country, note]\n"
                                     "    outputs:\n"
                                     "      - {field: fraud_probability, tensor: probability, "
                                     "index: 1}\n"
                                     "      - {field: probabilities, tensor: probability}\n"
                                     "      - {field: label, tensor: label}\n"
                                     "    extra_fields: [user_id, session]\n"
                                     "    fallback: {default: {fraud_probability: 0.5}}\n"
                                     "    fault: {abort: {percent: 1, status: 503}}\n"
                                     "    upstream: {timeout_ms: 50}\n";

/* A full valid row of cfg_fraud (without braces). */
#define ROW                                                                                        \
    "\"amount\": 12.5, \"log_amount\": 2.5257, \"hour\": 3, \"image\": [0, 0.5, 1, -1], "          \
    "\"score\": 0.1, \"n_tx\": -7, \"age\": 2147483647, \"merchant_id\": 9007199254740991, "       \
    "\"is_new\": true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\""

/* Parses yaml and the pipeline under pipelines.<name>; returns the rc and the messages in *msgs
 * (caller frees; NULL when there were none). */
static int parse_pipeline(const char *yaml, const char *name, sl_pipeline_t **out, char **msgs) {
    sl_buf_t err = SL_BUF_INIT;
    sl_yaml_doc_t *doc = NULL;
    int rc = sl_yaml_doc_parse("gw.yaml", yaml, strlen(yaml), NULL, &doc, &err);
    if (rc != 0) fail_msg("YAML error: %s", err.data);
    const sl_yaml_node_t *node = sl_yaml_map_get(sl_yaml_map_get(doc->root, "pipelines"), name);
    sl_yaml_errors_t e = {.file = "gw.yaml", .out = &err};
    *out = (sl_pipeline_t *)1;
    rc = sl_pipeline_parse(&e, name, node, out);
    sl_yaml_doc_free(doc);
    *msgs = err.data;
    return rc;
}

static sl_pipeline_t *parse_ok(const char *yaml, const char *name) {
    sl_pipeline_t *p;
    char *msgs;
    int rc = parse_pipeline(yaml, name, &p, &msgs);
    if (rc != 0) fail_msg("unexpected parse failure (%d): %s", rc, msgs ? msgs : "");
    assert_null(msgs);
    assert_non_null(p);
    return p;
}

static void assert_has(const char *hay, const char *needle) {
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, hay ? hay : "(nothing)");
}

/* A config that must fail with a message containing want. */
static void parse_fails(const char *yaml, const char *want) {
    sl_pipeline_t *p;
    char *msgs;
    int rc = parse_pipeline(yaml, "fraud", &p, &msgs);
    assert_int_equal(rc, SL_EINVAL);
    assert_null(p);
    assert_has(msgs, want);
    free(msgs);
}

typedef struct decoded {
    sl_infer_request_t *req;
    sl_pipeline_input_t info;
    sl_infer_error_t err;
    sl_infer_code_t rc;
} decoded_t;

static void decode(const sl_pipeline_t *p, const char *body, uint32_t max_rows, decoded_t *d) {
    memset(d, 0, sizeof *d);
    d->req = sl_infer_request_new(NULL, NULL, NULL);
    d->rc = sl_pipeline_decode(p, (const uint8_t *)body, strlen(body), max_rows, d->req, &d->info,
                               &d->err);
}

static void decoded_free(decoded_t *d) {
    sl_pipeline_input_free(&d->info);
    sl_infer_request_free(d->req);
}

static void decode_ok(const sl_pipeline_t *p, const char *body, decoded_t *d) {
    decode(p, body, 0, d);
    if (d->rc != SL_INFER_OK) fail_msg("decode failed: %s\nbody: %s", d->err.msg, body);
}

/* Decoding body must fail with exactly msg. */
static void decode_fails(const sl_pipeline_t *p, const char *body, uint32_t max_rows,
                         const char *msg) {
    decoded_t d;
    decode(p, body, max_rows, &d);
    if (d.rc != SL_INFER_INVALID) fail_msg("decode of %s: rc %d, want INVALID", body, d.rc);
    if (strcmp(d.err.msg, msg) != 0) fail_msg("body %s:\n got: %s\nwant: %s", body, d.err.msg, msg);
    assert_int_equal(sl_infer_code_http(d.rc), 400);
    assert_null(d.info.root_); /* nothing kept */
    decoded_free(&d);
}

static const sl_infer_input_t *input(const sl_infer_request_t *req, const char *name) {
    for (size_t i = 0; i < req->n_inputs; i++)
        if (strcmp(req->inputs[i].name, name) == 0) return &req->inputs[i];
    fail_msg("no input '%s'", name);
    return NULL;
}

static void assert_dims(const sl_infer_input_t *in, int64_t rows, int64_t n) {
    assert_int_equal(in->ndim, 2);
    assert_int_equal(in->dims[0], rows);
    assert_int_equal(in->dims[1], n);
}

/* ---- config -------------------------------------------------------------------------------- */

static void test_parse_accessors(void **state) {
    sl_pipeline_t *p = parse_ok(cfg_fraud, "fraud");
    assert_string_equal(sl_pipeline_name(p), "fraud");
    assert_string_equal(sl_pipeline_model(p), "fraud_xgboost");
    assert_string_equal(sl_pipeline_version(p), "1.0.0");
    assert_int_equal(sl_pipeline_line(p), 3);
    assert_int_equal(sl_pipeline_step_count(p), 1);
    assert_int_equal(sl_pipeline_step_kind(p, 0), SL_PIPELINE_STEP_MODEL);
    assert_int_equal(sl_pipeline_output_count(p), 3);
    assert_string_equal(sl_pipeline_output_field(p, 0), "fraud_probability");
    assert_string_equal(sl_pipeline_output_field(p, 1), "probabilities");
    assert_string_equal(sl_pipeline_output_field(p, 2), "label");
    assert_true(sl_pipeline_has_output_field(p, "label"));
    assert_false(sl_pipeline_has_output_field(p, "amount"));
    sl_pipeline_free(p);

    /* version "" and absent both mean "none". */
    p = parse_ok("pipelines:\n  a:\n    model: m\n    version: \"\"\n"
                 "    inputs: [{tensor: x, datatype: FP32, fields: [v]}]\n"
                 "    outputs: [{field: y, tensor: out}]\n",
                 "a");
    assert_null(sl_pipeline_version(p));
    sl_pipeline_free(p);
    sl_pipeline_free(NULL);
}

#define MINI(inputs, outputs)                                                                      \
    "pipelines:\n  fraud:\n    model: fraud_xgboost\n    inputs:\n" inputs "    "                  \
    "outputs:\n" outputs
#define IN_OK  "      - {tensor: x, datatype: FP32, fields: [a, b]}\n"
#define OUT_OK "      - {field: p, tensor: prob}\n"

static void test_parse_errors(void **state) {
    parse_fails("pipelines:\n  fraud:\n    inputs: []\n",
                "gw.yaml:3: pipeline 'fraud' needs 'model'");
    parse_fails("pipelines:\n  fraud:\n    modle: x\n",
                "gw.yaml:3: unknown key 'modle' in pipeline "
                "'fraud' (did you mean 'model'?)");
    parse_fails("pipelines:\n  fraud: [1]\n", "gw.yaml:2: pipeline 'fraud' must be a mapping");
    parse_fails("pipelines:\n  fraud:\n    model: ../etc\n    inputs:\n" IN_OK,
                "gw.yaml:3: '../etc' is not a "
                "model name");
    parse_fails("pipelines:\n  fraud:\n    model: m\n    version: \"1 0\"\n",
                "gw.yaml:4: version '1 0' of pipeline 'fraud' is not a version name");
    parse_fails(MINI("", OUT_OK), "gw.yaml:4: pipeline 'fraud' needs 'inputs'");
    parse_fails(MINI("      []\n", OUT_OK), "pipeline 'fraud' has 0 inputs (1 to 64)");
    parse_fails(MINI(IN_OK, ""), "gw.yaml:6: pipeline 'fraud' needs 'outputs'");
    parse_fails(MINI("      - {tensor: x, datatype: FP16, fields: [a]}\n", OUT_OK),
                "gw.yaml:5: datatype 'FP16' of inputs[0] is not one of FP32, FP64, INT32, INT64, "
                "BOOL, BYTES");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, fields: [a], field: b}\n", OUT_OK),
                "gw.yaml:5: inputs[0] has both 'fields'");
    parse_fails(MINI("      - {tensor: x, datatype: FP32}\n", OUT_OK),
                "gw.yaml:5: inputs[0] needs 'fields' (a list of field names) or 'field' and "
                "'length'");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, field: img}\n", OUT_OK),
                "inputs[0] needs 'length' (the number of elements field 'img' holds)");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, field: img, length: 0}\n", OUT_OK),
                "'length' of inputs[0] must be an integer from 1 to 65536");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, field: img, length: 65537}\n", OUT_OK),
                "'length' of inputs[0] must be an integer from 1 to 65536");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, fields: [a]}\n"
                     "      - {tensor: y, datatype: INT64, fields: [b, a]}\n",
                     OUT_OK),
                "gw.yaml:6: field 'a' is declared twice (first at line 5)");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, fields: [a]}\n"
                     "      - {tensor: x, datatype: FP32, fields: [b]}\n",
                     OUT_OK),
                "gw.yaml:6: input tensor 'x' is listed twice");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, fields: [instances]}\n", OUT_OK),
                "field name 'instances' is reserved");
    parse_fails(MINI("      - {tensor: x, datatype: FP32, fields: [\"a b\"]}\n", OUT_OK),
                "field name 'a b' is not valid");
    parse_fails(MINI(IN_OK, OUT_OK "      - {field: p, tensor: other}\n"),
                "gw.yaml:8: output field 'p' is listed twice");
    parse_fails(MINI(IN_OK, "      - {field: p, tensor: prob, index: -1}\n"),
                "gw.yaml:7: 'index' of outputs[0] must be an integer from 0 to 2147483647");
    parse_fails(MINI(IN_OK, "      - {field: p, tensr: prob}\n"),
                "unknown key 'tensr' in outputs[0] (did you mean 'tensor'?)");
    parse_fails(MINI(IN_OK, OUT_OK) "    extra_fields: [user_id, a]\n",
                "gw.yaml:8: field 'a' is declared twice (first at line 5)");

    /* Every problem is reported, not just the first. */
    sl_pipeline_t *p;
    char *msgs;
    int rc = parse_pipeline(
        MINI("      - {tensor: x, datatype: FP8, fields: [a]}\n", "      - {field: p}\n"), "fraud",
        &p, &msgs);
    assert_int_equal(rc, SL_EINVAL);
    assert_has(msgs, "gw.yaml:5: datatype 'FP8'");
    assert_has(msgs, "gw.yaml:7: outputs[0] needs 'tensor'");
    free(msgs);

    /* A bad pipeline name (the route's {name}). */
    rc = parse_pipeline("pipelines:\n  .x:\n    model: m\n", ".x", &p, &msgs);
    assert_int_equal(rc, SL_EINVAL);
    assert_has(msgs, "gw.yaml:3: '.x' is not a pipeline name");
    free(msgs);
}

static void test_parse_limits(void **state) {
    /* 65 input tensors. */
    sl_buf_t y = SL_BUF_INIT;
    sl_buf_puts(&y, "pipelines:\n  fraud:\n    model: m\n    inputs:\n");
    for (int i = 0; i < 65; i++)
        sl_buf_printf(&y, "      - {tensor: t%d, datatype: FP32, fields: [f%d]}\n", i, i);
    sl_buf_puts(&y, "    outputs: [{field: p, tensor: q}]\n");
    parse_fails(y.data, "pipeline 'fraud' has 65 inputs (1 to 64)");
    /* 1025 fields in one list, then 1200 in two. */
    sl_buf_reset(&y);
    sl_buf_puts(&y, "pipelines:\n  fraud:\n    model: m\n    inputs:\n"
                    "      - tensor: t\n        datatype: FP32\n        fields: [");
    for (int i = 0; i < 1025; i++)
        sl_buf_printf(&y, "%sf%d", i ? ", " : "", i);
    sl_buf_puts(&y, "]\n    outputs: [{field: p, tensor: q}]\n");
    parse_fails(y.data, "gw.yaml:7: 'fields' of inputs[0] lists 1025 fields (1 to 1024)");
    sl_buf_reset(&y);
    sl_buf_puts(&y, "pipelines:\n  fraud:\n    model: m\n    inputs:\n");
    for (int t = 0; t < 2; t++) {
        sl_buf_printf(&y, "      - tensor: t%d\n        datatype: FP32\n        fields: [", t);
        for (int i = 0; i < 600; i++)
            sl_buf_printf(&y, "%sf%d_%d", i ? ", " : "", t, i);
        sl_buf_puts(&y, "]\n");
    }
    sl_buf_puts(&y, "    outputs: [{field: p, tensor: q}]\n");
    parse_fails(y.data, "gw.yaml:10: pipeline 'fraud' declares more than 1024 fields");
    sl_buf_free(&y);
}

/* ---- decoding ------------------------------------------------------------------------------ */

static void test_decode_single_all_types(void **state) {
    sl_pipeline_t *p = parse_ok(cfg_fraud, "fraud");
    decoded_t d;
    decode_ok(p, "{" ROW ", \"user_id\": \"u-17\"}", &d);
    assert_int_equal(d.info.rows, 1);
    assert_false(d.info.instances);
    sl_infer_request_t *req = d.req;
    assert_string_equal(req->model_name, "fraud_xgboost");
    assert_string_equal(req->model_version, "1.0.0");
    assert_int_equal(req->n_inputs, 7);
    /* Inputs in config order. */
    assert_string_equal(req->inputs[0].name, "features");
    assert_string_equal(req->inputs[6].name, "text");

    const sl_infer_input_t *in = input(req, "features");
    assert_int_equal(in->dtype, SLUICE_DT_FP32);
    assert_dims(in, 1, 3);
    float f[3];
    assert_int_equal(in->byte_size, sizeof f);
    memcpy(f, in->data, sizeof f);
    assert_true(f[0] == 12.5f && f[1] == 2.5257f && f[2] == 3.0f);

    in = input(req, "pixels");
    assert_dims(in, 1, 4);
    float px[4];
    memcpy(px, in->data, sizeof px);
    assert_true(px[0] == 0.0f && px[1] == 0.5f && px[2] == 1.0f && px[3] == -1.0f);

    in = input(req, "f64");
    assert_int_equal(in->dtype, SLUICE_DT_FP64);
    double sc;
    memcpy(&sc, in->data, 8);
    assert_true(sc == 0.1);

    in = input(req, "counts");
    assert_int_equal(in->dtype, SLUICE_DT_INT32);
    int32_t c[2];
    memcpy(c, in->data, sizeof c);
    assert_int_equal(c[0], -7);
    assert_int_equal(c[1], INT32_MAX);

    in = input(req, "ids");
    int64_t id;
    memcpy(&id, in->data, 8);
    assert_int_equal(id, 9007199254740991LL);

    in = input(req, "flags");
    assert_int_equal(in->dtype, SLUICE_DT_BOOL);
    assert_int_equal(in->byte_size, 2);
    assert_memory_equal(in->data, "\1\0", 2);

    in = input(req, "text");
    assert_int_equal(in->dtype, SLUICE_DT_BYTES);
    assert_dims(in, 1, 2);
    assert_int_equal(in->byte_size, 4 + 2 + 4);
    assert_memory_equal(in->data, "\2\0\0\0NL\0\0\0\0", 10);

    /* Requested outputs: the distinct tensors the outputs section names. */
    assert_int_equal(req->n_outputs, 2);
    assert_string_equal(req->outputs[0].name, "probability");
    assert_string_equal(req->outputs[1].name, "label");
    decoded_free(&d);
    sl_pipeline_free(p);
}

static void test_decode_instances(void **state) {
    sl_pipeline_t *p = parse_ok("pipelines:\n  r:\n    model: m\n    inputs:\n"
                                "      - {tensor: x, datatype: INT64, fields: [a, b]}\n"
                                "      - {tensor: s, datatype: BYTES, field: words, length: 2}\n"
                                "    outputs: [{field: y, tensor: out}]\n"
                                "    extra_fields: [user_id]\n",
                                "r");
    decoded_t d;
    /* Key order differs per row; extras next to instances and inside rows. */
    decode_ok(p,
              "{\"user_id\": 42, \"instances\": ["
              "{\"a\": 1, \"b\": 2, \"words\": [\"x\", \"yy\"]},"
              "{\"words\": [\"\", \"z\"], \"b\": 4, \"a\": 3, \"user_id\": \"q\"},"
              "{\"b\": 6, \"a\": 5, \"words\": [\"ab\", \"c\"]}]}",
              &d);
    assert_int_equal(d.info.rows, 3);
    assert_true(d.info.instances);
    assert_null(d.req->model_version);
    const sl_infer_input_t *x = input(d.req, "x");
    assert_dims(x, 3, 2);
    int64_t v[6];
    assert_int_equal(x->byte_size, sizeof v);
    memcpy(v, x->data, sizeof v);
    for (int i = 0; i < 6; i++)
        assert_int_equal(v[i], i + 1);
    const sl_infer_input_t *s = input(d.req, "s");
    assert_dims(s, 3, 2);
    static const char want[] = "\1\0\0\0x\2\0\0\0yy\0\0\0\0\1\0\0\0z\2\0\0\0ab\1\0\0\0c";
    assert_int_equal(s->byte_size, sizeof want - 1);
    assert_memory_equal(s->data, want, sizeof want - 1);
    decoded_free(&d);

    /* max_rows: exactly at the limit passes, one more fails. */
    decode(p,
           "{\"instances\": [{\"a\":1,\"b\":2,\"words\":[\"\",\"\"]},"
           "{\"a\":1,\"b\":2,\"words\":[\"\",\"\"]}]}",
           2, &d);
    assert_int_equal(d.rc, SL_INFER_OK);
    decoded_free(&d);
    decode_fails(p,
                 "{\"instances\": [{\"a\":1,\"b\":2,\"words\":[\"\",\"\"]},"
                 "{\"a\":1,\"b\":2,\"words\":[\"\",\"\"]}]}",
                 1, "field 'instances' has 2 rows (at most 1)");
    sl_pipeline_free(p);
}

static void test_decode_errors(void **state) {
    sl_pipeline_t *p = parse_ok(cfg_fraud, "fraud");
    /* Replaces the value of one field in ROW: the body is built by hand for each case. */
    decode_fails(p, "{" ROW ", \"amount\": \"12\"}", 0, "field 'amount' appears twice");
    decode_fails(p,
                 "{\"amount\": \"12\", \"log_amount\": 1, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 3, \"is_new\": true, "
                 "\"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'amount': expected a number, got a string");
    decode_fails(p, "{\"amout\": 1}", 0, "unknown field 'amout' (did you mean 'amount'?)");
    decode_fails(p, "{\"zzzzzz\": 1}", 0, "unknown field 'zzzzzz'");
    decode_fails(p, "{\"a\\nb\": 1}", 0, "unknown field 'a?b'");
    decode_fails(p, "{\"amount\": 1}", 0, "missing field 'log_amount'");
    decode_fails(p, "{\"instances\": [{" ROW "}, {\"amount\": 1, \"log_amount\": 2}]}", 0,
                 "instances[1]: missing field 'hour'");
    decode_fails(p, "{\"instances\": [{" ROW "}, {" ROW ", \"amout\": 1}]}", 0,
                 "instances[1]: unknown field 'amout' (did you mean 'amount'?)");

#define WITH(field_json)                                                                           \
    "{\"instances\": [{" ROW "}, {\"amount\": 12.5, \"log_amount\": 2.5, \"hour\": 3, "            \
    "\"score\": 0.1, \"n_tx\": -7, \"age\": 2, \"merchant_id\": 1, \"is_new\": true, "             \
    "\"is_intl\": false, \"country\": \"NL\", \"note\": \"\", " field_json "}]}"
    decode_fails(p, WITH("\"image\": [1, 2, 3]"), 0,
                 "instances[1]: field 'image': expected an array of 4 numbers, got 3");
    decode_fails(p, WITH("\"image\": \"1,2,3,4\""), 0,
                 "instances[1]: field 'image': expected an array of 4 numbers, got a string");
    decode_fails(p, WITH("\"image\": [1, 2, null, 4]"), 0,
                 "instances[1]: field 'image': element 2: expected a number, got null");
    decode_fails(p, "{\"instances\": [{" ROW "}, 7]}", 0,
                 "instances[1]: expected an object of fields, got a number");
#undef WITH

    /* One field at a time, in a single-object body: every datatype's checks. */
#define ONE(field_json)                                                                            \
    "{" field_json ", \"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "    \
    "\"score\": 0.1, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 3, \"is_new\": true, "              \
    "\"is_intl\": false, \"country\": \"NL\"}"
    decode_fails(p, ONE("\"note\": 5"), 0, "field 'note': expected a string, got a number");
    /* (the body above lacks nothing else; check each type through its own field) */
    decode_fails(p,
                 "{\"amount\": 1e39, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 3, \"is_new\": true, "
                 "\"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'amount': 1e+39 is out of range for FP32");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 1e999, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 3, \"is_new\": "
                 "true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'score': expected a finite number");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1.5, \"age\": 2, \"merchant_id\": 3, \"is_new\": "
                 "true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'n_tx': expected an integer, got 1.5");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": 2147483648, \"merchant_id\": 3, "
                 "\"is_new\": true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0,
                 "field 'age': 2147483648 is out of range for INT32 (-2147483648 to 2147483647)");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": \"2\", \"merchant_id\": 3, "
                 "\"is_new\": true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'age': expected an integer, got a string");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 9007199254740992, "
                 "\"is_new\": true, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0,
                 "field 'merchant_id': 9007199254740992 cannot be exact as a JSON number "
                 "(magnitude must be below 2^53)");
    decode_fails(p,
                 "{\"amount\": 1, \"log_amount\": 2, \"hour\": 3, \"image\": [0, 0, 0, 0], "
                 "\"score\": 0.1, \"n_tx\": 1, \"age\": 2, \"merchant_id\": 3, "
                 "\"is_new\": 1, \"is_intl\": false, \"country\": \"NL\", \"note\": \"\"}",
                 0, "field 'is_new': expected true or false, got a number");
#undef ONE

    /* The request's shape. */
    decode_fails(p, "[1, 2]", 0,
                 "the request must be a JSON object of fields, or {\"instances\": [objects of "
                 "fields]}");
    decode_fails(p, "{\"instances\": {}}", 0,
                 "field 'instances' must be an array of objects, got an object");
    decode_fails(p, "{\"instances\": []}", 0, "field 'instances' must not be empty");
    decode_fails(p, "{\"instances\": [{" ROW "}], \"amount\": 1}", 0,
                 "field 'amount' belongs in each row of 'instances', not next to it");
    decode_fails(p, "{\"instances\": [{" ROW "}], \"instances\": []}", 0,
                 "field 'instances' appears twice");
    decode_fails(p, "{\"instances\": [{" ROW "}], \"sesion\": 1}", 0,
                 "unknown field 'sesion' (did you mean 'session'?)");
    /* Malformed JSON and nesting beyond the limit: the JSON parser's messages. */
    decoded_t d;
    decode(p, "{\"amount\": ", 0, &d);
    assert_int_equal(d.rc, SL_INFER_INVALID);
    assert_has(d.err.msg, "JSON");
    decoded_free(&d);
    decode(p, "{\"user_id\": [[[[[[[[[[1]]]]]]]]]]}", 0, &d);
    assert_int_equal(d.rc, SL_INFER_INVALID);
    assert_has(d.err.msg, "nested deeper than 8 levels");
    decoded_free(&d);
    decode(p, "", 0, &d);
    assert_int_equal(d.rc, SL_INFER_INVALID);
    decoded_free(&d);
    sl_pipeline_free(p);
}

/* ---- the input hash and the sticky field --------------------------------------------------- */

static uint64_t hash_of(const sl_pipeline_t *p, const char *body) {
    decoded_t d;
    decode_ok(p, body, &d);
    uint64_t h = d.info.hash;
    decoded_free(&d);
    return h;
}

static void test_input_hash(void **state) {
    sl_pipeline_t *p = parse_ok("pipelines:\n  h:\n    model: m\n    inputs:\n"
                                "      - {tensor: x, datatype: FP32, fields: [a, b]}\n"
                                "      - {tensor: s, datatype: BYTES, fields: [c]}\n"
                                "    outputs: [{field: y, tensor: out}]\n"
                                "    extra_fields: [user_id]\n",
                                "h");
    uint64_t h = hash_of(p, "{\"a\": 1.5, \"b\": 2, \"c\": \"hi\"}");
    /* Frozen: the fallback cache of every replica keys on it. */
    assert_int_equal(h, 0x38050f937595d3d9ull);
    assert_int_equal(hash_of(p, "{\"c\": \"hi\", \"b\": 2, \"a\": 1.5}"), h);
    assert_int_equal(hash_of(p, "{\"a\": 1.5, \"user_id\": \"u1\", \"b\": 2.0, \"c\": \"hi\"}"), h);
    assert_int_equal(hash_of(p, "{\"a\": 1.5, \"user_id\": 99, \"b\": 2, \"c\": \"hi\"}"), h);
    /* One row as instances is the same model input. */
    assert_int_equal(hash_of(p, "{\"instances\": [{\"a\": 1.5, \"b\": 2, \"c\": \"hi\"}]}"), h);
    /* Any change to the model's input changes it. */
    assert_int_not_equal(hash_of(p, "{\"a\": 1.5, \"b\": 2.5, \"c\": \"hi\"}"), h);
    assert_int_not_equal(hash_of(p, "{\"a\": 2, \"b\": 1.5, \"c\": \"hi\"}"), h);
    assert_int_not_equal(hash_of(p, "{\"a\": 1.5, \"b\": 2, \"c\": \"hi \"}"), h);
    assert_int_not_equal(
        hash_of(p, "{\"instances\": [{\"a\": 1.5, \"b\": 2, \"c\": \"hi\"}, {\"a\": 1.5, \"b\": 2, "
                   "\"c\": \"hi\"}]}"),
        h);
    sl_pipeline_free(p);
}

static void test_input_field(void **state) {
    sl_pipeline_t *p = parse_ok("pipelines:\n  h:\n    model: m\n    inputs:\n"
                                "      - {tensor: x, datatype: FP32, fields: [a]}\n"
                                "      - {tensor: f, datatype: BOOL, fields: [flag]}\n"
                                "    outputs: [{field: y, tensor: out}]\n"
                                "    extra_fields: [user_id, big, neg, frac]\n",
                                "h");
    decoded_t d;
    decode_ok(p,
              "{\"a\": 12.5, \"flag\": true, \"user_id\": \"u-17\", \"big\": 12345678901234, "
              "\"neg\": -3, \"frac\": 0.1}",
              &d);
    sl_str_t v;
    assert_int_equal(sl_pipeline_input_field(&d.info, "user_id", &v), 0);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.ptr, "u-17", 4);
    assert_int_equal(sl_pipeline_input_field(&d.info, "a", &v), 0);
    assert_true(sl_str_eq(v, "12.5"));
    assert_int_equal(sl_pipeline_input_field(&d.info, "big", &v), 0);
    assert_true(sl_str_eq(v, "12345678901234"));
    assert_int_equal(sl_pipeline_input_field(&d.info, "neg", &v), 0);
    assert_true(sl_str_eq(v, "-3"));
    assert_int_equal(sl_pipeline_input_field(&d.info, "frac", &v), 0);
    assert_true(sl_str_eq(v, "0.1"));
    assert_int_equal(sl_pipeline_input_field(&d.info, "flag", &v), SL_EINVAL);
    assert_int_equal(sl_pipeline_input_field(&d.info, "nope", &v), SL_ENOENT);
    decoded_free(&d);
    /* Freed and zeroed: safe to free again, and lookups find nothing. */
    sl_pipeline_input_free(&d.info);
    assert_int_equal(sl_pipeline_input_field(&d.info, "user_id", &v), SL_ENOENT);

    /* instances: the top-level field wins, else the first row's. */
    decode_ok(
        p, "{\"user_id\": \"top\", \"instances\": [{\"a\": 1, \"flag\": false, \"user_id\": 7}]}",
        &d);
    assert_int_equal(sl_pipeline_input_field(&d.info, "user_id", &v), 0);
    assert_true(sl_str_eq(v, "top"));
    decoded_free(&d);
    decode_ok(p,
              "{\"instances\": [{\"a\": 1, \"flag\": false, \"user_id\": 7}, "
              "{\"a\": 1, \"flag\": false, \"user_id\": 8}]}",
              &d);
    assert_int_equal(sl_pipeline_input_field(&d.info, "user_id", &v), 0);
    assert_true(sl_str_eq(v, "7"));
    decoded_free(&d);
    sl_pipeline_free(p);
}

/* ---- encoding ------------------------------------------------------------------------------ */

typedef struct tensor_spec {
    const char *name;
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[4];
    const void *data;
    uint64_t bytes;
} tensor_spec_t;

static sl_infer_response_t *make_resp(const tensor_spec_t *t, size_t n) {
    const char *names[8];
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        names[i] = t[i].name;
        total += (t[i].bytes + 15) & ~(uint64_t)15;
    }
    sl_infer_response_t *r = sl_infer_response_new("fraud_xgboost", "1.0.0", n, names, total);
    uint8_t *data = sl_infer_response_data(r);
    for (size_t i = 0; i < n; i++) {
        sl_infer_output_t *o = &r->outputs[i];
        o->dtype = t[i].dtype;
        o->ndim = t[i].ndim;
        memcpy(o->dims, t[i].dims, sizeof t[i].dims);
        o->byte_size = t[i].bytes;
        o->data = data;
        if (t[i].bytes) memcpy(data, t[i].data, t[i].bytes);
        data += (t[i].bytes + 15) & ~(uint64_t)15;
    }
    return r;
}

/* Encodes resp for a request decoded from body; returns the JSON (caller frees) or NULL with
 * *rc set. */
static char *encode(const sl_pipeline_t *p, const char *body, const sl_infer_response_t *resp,
                    sl_infer_code_t *rc, sl_infer_error_t *err) {
    decoded_t d;
    decode_ok(p, body, &d);
    sl_buf_t out = SL_BUF_INIT;
    *rc = sl_pipeline_encode(p, &d.info, resp, &out, err);
    decoded_free(&d);
    if (*rc != SL_INFER_OK) {
        assert_int_equal(out.len, 0); /* nothing written */
        sl_buf_free(&out);
        return NULL;
    }
    return out.data;
}

static char *encode_ok(const sl_pipeline_t *p, const char *body, const sl_infer_response_t *resp) {
    sl_infer_code_t rc;
    sl_infer_error_t err = {0};
    char *s = encode(p, body, resp, &rc, &err);
    if (rc != SL_INFER_OK) fail_msg("encode failed: %s", err.msg);
    /* Always valid JSON. */
    cJSON *j = NULL;
    assert_int_equal(sl_json_parse(s, strlen(s), &j, NULL, 0), 0);
    cJSON_Delete(j);
    return s;
}

static const char *const cfg_enc = "pipelines:\n  fraud:\n    model: fraud_xgboost\n    inputs:\n"
                                   "      - {tensor: x, datatype: FP32, fields: [amount]}\n"
                                   "    outputs:\n"
                                   "      - {field: fraud_probability, tensor: probability, "
                                   "index: 1}\n"
                                   "      - {field: probabilities, tensor: probability}\n"
                                   "      - {field: label, tensor: label}\n";

static void test_encode_single_and_instances(void **state) {
    sl_pipeline_t *p = parse_ok(cfg_enc, "fraud");
    float prob[4] = {0.9877f, 0.0123f, 0.25f, 0.75f};
    int64_t label[2] = {0, 7};
    tensor_spec_t t[2] = {
        {"label", SLUICE_DT_INT64, 1, {1}, label, 8},
        {"probability", SLUICE_DT_FP32, 2, {1, 2}, prob, 8},
    };
    sl_infer_response_t *r = make_resp(t, 2);
    char *s = encode_ok(p, "{\"amount\": 1}", r);
    assert_string_equal(s, "{\"model\":\"fraud_xgboost\",\"version\":\"1.0.0\",\"outputs\":{"
                           "\"fraud_probability\":0.0123,\"probabilities\":[0.9877,0.0123],"
                           "\"label\":0}}");
    free(s);
    sl_infer_response_free(r);

    t[0].dims[0] = 2;
    t[0].bytes = 16;
    t[1].dims[0] = 2;
    t[1].bytes = 16;
    r = make_resp(t, 2);
    s = encode_ok(p, "{\"instances\": [{\"amount\": 1}, {\"amount\": 2}]}", r);
    assert_string_equal(s, "{\"model\":\"fraud_xgboost\",\"version\":\"1.0.0\",\"predictions\":["
                           "{\"fraud_probability\":0.0123,\"probabilities\":[0.9877,0.0123],"
                           "\"label\":0},"
                           "{\"fraud_probability\":0.75,\"probabilities\":[0.25,0.75],"
                           "\"label\":7}]}");
    free(s);
    sl_infer_response_free(r);
    sl_pipeline_free(p);
}

static void test_encode_datatypes(void **state) {
    sl_pipeline_t *p = parse_ok("pipelines:\n  t:\n    model: m\n    inputs:\n"
                                "      - {tensor: x, datatype: FP32, fields: [a]}\n"
                                "    outputs:\n"
                                "      - {field: d, tensor: d}\n"
                                "      - {field: b, tensor: b}\n"
                                "      - {field: s, tensor: s}\n"
                                "      - {field: h, tensor: h}\n"
                                "      - {field: u, tensor: u}\n"
                                "      - {field: e, tensor: e}\n",
                                "t");
    double dv[4] = {0.1, NAN, -INFINITY, 1e300};
    uint8_t bv[2] = {1, 0};
    static const char sv[] = "\3\0\0\0a\"b\2\0\0\0\xc3\xa9";
    uint16_t hv[1] = {0x3c00}; /* FP16 1.0 */
    uint32_t uv[1] = {4294967295u};
    tensor_spec_t t[6] = {
        {"d", SLUICE_DT_FP64, 2, {1, 4}, dv, sizeof dv},
        {"b", SLUICE_DT_BOOL, 2, {1, 2}, bv, 2},
        {"s", SLUICE_DT_BYTES, 2, {1, 2}, sv, sizeof sv - 1},
        {"h", SLUICE_DT_FP16, 1, {1}, hv, 2},
        {"u", SLUICE_DT_UINT32, 2, {1, 1}, uv, 4},
        {"e", SLUICE_DT_FP32, 2, {1, 0}, NULL, 0},
    };
    sl_infer_response_t *r = make_resp(t, 6);
    char *s = encode_ok(p, "{\"a\": 1}", r);
    assert_string_equal(s, "{\"model\":\"fraud_xgboost\",\"version\":\"1.0.0\",\"outputs\":{"
                           "\"d\":[0.1,null,null,1e+300],\"b\":[true,false],"
                           "\"s\":[\"a\\\"b\",\"\xc3\xa9\"],\"h\":1,\"u\":4294967295,\"e\":[]}}");
    free(s);
    sl_infer_response_free(r);
    sl_pipeline_free(p);
}

/* Floats come back shortest, and read back as the same float. */
static void test_encode_floats_round_trip(void **state) {
    sl_pipeline_t *p = parse_ok("pipelines:\n  t:\n    model: m\n    inputs:\n"
                                "      - {tensor: x, datatype: FP32, fields: [a]}\n"
                                "    outputs: [{field: v, tensor: v}, {field: w, tensor: w}]\n",
                                "t");
    enum { N = 2000 };
    float *fv = malloc(N * sizeof *fv);
    double *wv = malloc(N * sizeof *wv);
    uint64_t x = 0x1234567;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t bits = (uint32_t)x;
        memcpy(&fv[i], &bits, 4);
        if (!isfinite(fv[i])) fv[i] = (float)i / 7.0f;
        memcpy(&wv[i], &x, 8);
        if (!isfinite(wv[i])) wv[i] = i / 3.0;
    }
    fv[0] = 0.1f, fv[1] = 1.0f / 3.0f, fv[2] = -0.0f, fv[3] = 16777216.0f, fv[4] = 1e-45f;
    tensor_spec_t t[2] = {
        {"v", SLUICE_DT_FP32, 2, {1, N}, fv, N * 4},
        {"w", SLUICE_DT_FP64, 2, {1, N}, wv, N * 8},
    };
    sl_infer_response_t *r = make_resp(t, 2);
    char *s = encode_ok(p, "{\"a\": 1}", r);
    assert_has(s, "\"v\":[0.1,0.33333334,-0,16777216,1e-45,");
    char *c = strstr(s, "\"v\":[") + 5;
    for (int i = 0; i < N; i++) {
        char *end;
        float back = strtof(c, &end);
        if (memcmp(&back, &fv[i], 4) != 0)
            fail_msg("float %d: %.9g printed as %.*s", i, fv[i], (int)(end - c), c);
        c = end + 1;
    }
    c = strstr(s, "\"w\":[") + 5;
    for (int i = 0; i < N; i++) {
        char *end;
        double back = strtod(c, &end);
        if (back != wv[i]) fail_msg("double %d printed as %.*s", i, (int)(end - c), c);
        /* At most 17 significant digits. */
        assert_true(end - c <= 24);
        c = end + 1;
    }
    free(s);
    sl_infer_response_free(r);
    free(fv);
    free(wv);
    sl_pipeline_free(p);
}

static void encode_fails(const sl_pipeline_t *p, const char *body, const tensor_spec_t *t, size_t n,
                         const char *want) {
    sl_infer_response_t *r = make_resp(t, n);
    sl_infer_code_t rc;
    sl_infer_error_t err = {0};
    char *s = encode(p, body, r, &rc, &err);
    assert_null(s);
    assert_int_equal(rc, SL_INFER_INTERNAL);
    assert_has(err.msg, want);
    sl_infer_response_free(r);
}

static void test_encode_upstream_errors(void **state) {
    sl_pipeline_t *p = parse_ok(cfg_enc, "fraud");
    float prob[4] = {0};
    int64_t label[2] = {0};
    const char *one = "{\"amount\": 1}";
    tensor_spec_t ok_label = {"label", SLUICE_DT_INT64, 1, {1}, label, 8};
    tensor_spec_t t[2] = {ok_label, {"probability", SLUICE_DT_FP32, 2, {1, 2}, prob, 8}};
    encode_fails(p, one, t, 1, "model 'fraud_xgboost' returned no output 'probability'");
    /* dims[0] is not the request's rows. */
    t[1].dims[0] = 2, t[1].bytes = 16;
    encode_fails(p, one, t, 2,
                 "output 'probability' of model 'fraud_xgboost' has shape [2,2] for 1 rows");
    /* index 1 of a row of one element. */
    t[1].dims[0] = 1, t[1].dims[1] = 1, t[1].bytes = 4;
    encode_fails(p, one, t, 2,
                 "output field 'fraud_probability' wants element 1 of tensor "
                 "'probability', whose rows have 1");
    /* byte size does not match the dims. */
    t[1].dims[1] = 2, t[1].bytes = 12;
    encode_fails(p, one, t, 2, "output 'probability' has 12 bytes for 2 elements of FP32");
    /* A scalar (ndim 0) has no rows. */
    t[1].ndim = 0, t[1].bytes = 4;
    encode_fails(p, one, t, 2, "has shape [] for 1 rows");
    /* Malformed BYTES: a length running past the end. */
    t[1] = (tensor_spec_t){"probability", SLUICE_DT_BYTES, 2, {1, 2}, "\1\0\0\0a\x09\0\0\0b", 10};
    encode_fails(p, one, t, 2, "BYTES output 'probability' is malformed");
    t[1] = (tensor_spec_t){"probability", SLUICE_DT_BYTES, 2, {1, 4}, "\1\0\0\0a\0\0\0\0", 9};
    encode_fails(p, one, t, 2, "BYTES output 'probability' is too short for 4 elements");
    sl_pipeline_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accessors),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_decode_single_all_types),
        cmocka_unit_test(test_decode_instances),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_input_hash),
        cmocka_unit_test(test_input_field),
        cmocka_unit_test(test_encode_single_and_instances),
        cmocka_unit_test(test_encode_datatypes),
        cmocka_unit_test(test_encode_floats_round_trip),
        cmocka_unit_test(test_encode_upstream_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
