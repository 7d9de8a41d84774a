/* Unit tests for the model repository's parsing: the YAML document tree, config.yaml (valid
 * configs, every kind of error with its line), manifest.json, semantic versions (including
 * pre-release ordering), and the repository on disk (listing, version policies, manifests,
 * sha256, fingerprints). */
#include "core/common.h"
#include "core/json.h"
#include "core/yaml_doc.h"
#include "inference/model_config.h"
#include "inference/repository.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "inference_test_util.h"

/* ---- helpers ---- */

static sl_buf_t g_err;
static sl_model_config_t g_cfg;

static int parse(const char *yaml) {
    sl_buf_reset(&g_err);
    return sl_model_config_parse("models/m/config.yaml", "m", yaml, strlen(yaml), &g_cfg, &g_err);
}

/* Asserts that yaml is refused with a message containing want. */
static void expect_error(const char *yaml, const char *want) {
    int rc = parse(yaml);
    if (rc == 0 || !g_err.data || !strstr(g_err.data, want)) {
        fprintf(stderr, "config:\n%s\nexpected error containing: %s\ngot rc %d: %s\n", yaml, want,
                rc, g_err.data ? g_err.data : "(none)");
        if (rc == 0) sl_model_config_free(&g_cfg);
        fail();
    }
}

#define BASE "backend: onnx\n"
#define IO                                                                                         \
    "inputs:\n  - {name: x, datatype: FP32, dims: [4]}\n"                                          \
    "outputs:\n  - {name: y, datatype: TYPE_FP32, dims: [-1, 2]}\n"

static int setup(void **state) {
    sl_buf_reset(&g_err);
    return 0;
}

static int teardown(void **state) {
    sl_buf_free(&g_err);
    return 0;
}

/* ---- YAML tree ---- */

static void test_yaml_tree(void **state) {
    const char *y = "a: 1\nb:\n  - x\n  - 'y'\nc: {d: ~}\n";
    sl_yaml_doc_t *doc = NULL;
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_yaml_doc_parse("t.yaml", y, strlen(y), NULL, &doc, &err), 0);
    const sl_yaml_node_t *root = doc->root;
    assert_int_equal(root->kind, SL_YAML_MAP);
    assert_int_equal(root->n, 3);
    int64_t v;
    assert_int_equal(sl_yaml_get_int64(sl_yaml_map_get(root, "a"), 0, 10, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(sl_yaml_get_int64(sl_yaml_map_get(root, "a"), 2, 10, &v), SL_ERANGE);
    const sl_yaml_node_t *b = sl_yaml_map_get(root, "b");
    assert_int_equal(b->kind, SL_YAML_SEQ);
    assert_int_equal(b->line, 3); /* a block sequence starts at its first '-' */
    assert_int_equal(b->items[1]->line, 4);
    assert_false(b->items[1]->plain);
    assert_true(sl_yaml_is_null(sl_yaml_map_get(sl_yaml_map_get(root, "c"), "d")));
    assert_null(sl_yaml_map_get(root, "zz"));
    sl_yaml_doc_free(doc);

    /* Refusals: duplicate keys, aliases, several documents, depth, node count, size. */
    struct {
        const char *y;
        const char *want;
        sl_yaml_limits_t lim;
    } bad[] = {
        {"a: 1\nb: 2\na: 3\n", "t.yaml:3: duplicate key 'a' (first on line 1)", {0}},
        {"a: &x 1\nb: *x\n", "t.yaml:1: YAML anchors (&x) are not allowed", {0}},
        {"a: 1\n---\nb: 2\n", "t.yaml:2: only one YAML document is allowed", {0}},
        {"a: [[[[1]]]]\n", "nesting deeper than 3 levels", {.max_depth = 3}},
        {"[1, 2, 3, 4, 5]\n", "more than 4 YAML nodes", {.max_nodes = 4}},
        {"a: 12345\n", "larger than the limit of 4", {.max_bytes = 4}},
        {"a: !!str 1\n", "YAML tags (tag:yaml.org,2002:str) are not allowed", {0}},
        {"a: [1, 2\nb: 3\n", "t.yaml:", {0}},
        {"[a]: 1\n", "mapping keys must be scalars", {0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_buf_reset(&err);
        doc = NULL;
        int rc = sl_yaml_doc_parse("t.yaml", bad[i].y, strlen(bad[i].y), &bad[i].lim, &doc, &err);
        assert_true(rc == SL_EPARSE || rc == SL_ELIMIT);
        assert_null(doc);
        if (!strstr(err.data, bad[i].want)) {
            fprintf(stderr, "case %zu: %s\n", i, err.data);
            fail();
        }
    }
    sl_buf_free(&err);
}

/* ---- config.yaml ---- */

static void test_config_full(void **state) {
    const char *y = "name: m\n"
                    "backend: xgboost\n"
                    "platform: xgboost_ubj\n"
                    "max_batch_size: 32\n"
                    "inputs:\n"
                    "  - name: features\n"
                    "    datatype: FP32\n"
                    "    dims: [12]\n"
                    "  - {name: ids, datatype: TYPE_STRING, dims: [-1]}\n"
                    "outputs:\n"
                    "  - {name: prob, datatype: FP32, dims: [1]}\n"
                    "dynamic_batching:\n"
                    "  preferred_batch_sizes: [16, 8]\n"
                    "  max_queue_delay_us: 500\n"
                    "  priority_levels: 2\n"
                    "  default_priority_level: 1\n"
                    "  default_queue_policy:\n"
                    "    max_queue_size: 100\n"
                    "    default_timeout_us: 2000\n"
                    "    allow_timeout_override: true\n"
                    "    timeout_action: delay\n"
                    "  priority_queue_policy:\n"
                    "    2: {max_queue_size: 5, timeout_action: reject}\n"
                    "instance_group: {count: 3, kind: cpu, threads: 2}\n"
                    "warmup:\n"
                    "  - {name: w, batch_size: 4, random: true, inputs: {features: w/f.npy}}\n"
                    "  - {}\n"
                    "version_policy: {specific: [1.0.0, 2.0.0-rc.1]}\n"
                    "response_cache: {enable: true, max_entries: 10}\n"
                    "parameters: {nthread: 4, objective: 'binary:logistic'}\n";
    assert_int_equal(parse(y), 0);
    sl_model_config_t *c = &g_cfg;
    assert_string_equal(c->name, "m");
    assert_string_equal(c->backend, "xgboost");
    assert_string_equal(c->platform, "xgboost_ubj");
    assert_int_equal(c->max_batch_size, 32);
    assert_int_equal(c->n_inputs, 2);
    assert_string_equal(c->inputs[1].name, "ids");
    assert_int_equal(c->inputs[1].dtype, SLUICE_DT_BYTES);
    assert_int_equal(c->inputs[0].ndim, 1);
    assert_int_equal(c->inputs[0].dims[0], 12);
    assert_int_equal(c->inputs[1].dims[0], -1);
    assert_int_equal(c->n_outputs, 1);
    const sl_dynamic_batching_t *db = &c->batching;
    assert_true(db->enabled);
    assert_int_equal(db->n_preferred, 2);
    assert_int_equal(db->preferred[0], 8); /* sorted ascending */
    assert_int_equal(db->preferred[1], 16);
    assert_int_equal(db->max_queue_delay_us, 500);
    assert_int_equal(db->priority_levels, 2);
    assert_int_equal(db->default_priority_level, 1);
    assert_int_equal(db->default_policy.max_queue_size, 100);
    assert_int_equal(db->default_policy.default_timeout_us, 2000);
    assert_true(db->default_policy.allow_timeout_override);
    assert_int_equal(db->default_policy.timeout_action, SL_TIMEOUT_DELAY);
    assert_true(db->has_priority_policy[2]);
    assert_false(db->has_priority_policy[1]);
    assert_int_equal(db->priority_policy[2].max_queue_size, 5);
    assert_int_equal(db->priority_policy[2].timeout_action, SL_TIMEOUT_REJECT);
    assert_int_equal(db->priority_policy[1].max_queue_size, 100); /* the default applies */
    assert_int_equal(c->instance_count, 3);
    assert_int_equal(c->instance_threads, 2);
    assert_int_equal(c->instance_kind, SLUICE_DEVICE_CPU);
    assert_int_equal(c->n_warmup, 2);
    assert_string_equal(c->warmup[0].name, "w");
    assert_int_equal(c->warmup[0].batch_size, 4);
    assert_true(c->warmup[0].random);
    assert_string_equal(c->warmup[0].data_file[0], "w/f.npy");
    assert_null(c->warmup[0].data_file[1]);
    assert_string_equal(c->warmup[1].name, "warmup1");
    assert_int_equal(c->warmup[1].batch_size, 1);
    assert_int_equal(c->version_policy, SL_VERSIONS_SPECIFIC);
    assert_int_equal(c->n_specific, 2);
    assert_string_equal(c->specific[1], "2.0.0-rc.1");
    assert_true(c->response_cache);
    assert_int_equal(c->response_cache_entries, 10);
    assert_int_equal(c->n_params, 2);
    assert_string_equal(c->param_keys[1], "objective");
    assert_string_equal(c->param_values[1], "binary:logistic");
    assert_string_equal(c->param_values[0], "4");

    /* The JSON form uses Triton's field names. */
    sl_buf_t js = SL_BUF_INIT;
    sl_model_config_to_json(c, &js);
    cJSON *j = NULL;
    assert_int_equal(sl_json_parse(js.data, js.len, &j, NULL, 0), 0);
    assert_string_equal(cJSON_GetObjectItem(j, "backend")->valuestring, "xgboost");
    assert_int_equal(cJSON_GetObjectItem(j, "max_batch_size")->valueint, 32);
    cJSON *in1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "input"), 1);
    assert_string_equal(cJSON_GetObjectItem(in1, "data_type")->valuestring, "TYPE_STRING");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(in1, "dims"), 0)->valueint, -1);
    cJSON *dbj = cJSON_GetObjectItem(j, "dynamic_batching");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(dbj, "preferred_batch_size")), 2);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(dbj, "default_queue_policy"), "timeout_action")
            ->valuestring,
        "DELAY");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(dbj, "priority_queue_policy"), "2"));
    cJSON *vp = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "version_policy"), "specific");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(vp, "versions")), 2);
    cJSON_Delete(j);
    sl_buf_free(&js);
    sl_model_config_free(&g_cfg);
}

static void test_config_defaults(void **state) {
    assert_int_equal(parse(BASE IO), 0);
    assert_string_equal(g_cfg.name, "m");
    assert_string_equal(g_cfg.platform, "onnx_onnxv1");
    assert_int_equal(g_cfg.max_batch_size, 0);
    assert_false(g_cfg.batching.enabled);
    assert_int_equal(g_cfg.instance_count, 1);
    assert_int_equal(g_cfg.instance_threads, 1);
    assert_int_equal(g_cfg.version_policy, SL_VERSIONS_LATEST);
    assert_int_equal(g_cfg.latest_n, 1);
    assert_false(g_cfg.response_cache);
    assert_int_equal(g_cfg.response_cache_entries, 1024);
    assert_int_equal(g_cfg.outputs[0].ndim, 2);
    sl_model_config_free(&g_cfg);

    /* `dynamic_batching: {}` (and a bare key) enable batching with defaults; `all` policy. */
    assert_int_equal(parse(BASE "max_batch_size: 8\ndynamic_batching:\nversion_policy: all\n" IO),
                     0);
    assert_true(g_cfg.batching.enabled);
    assert_int_equal(g_cfg.batching.priority_levels, 0);
    assert_int_equal(g_cfg.version_policy, SL_VERSIONS_ALL);
    sl_model_config_free(&g_cfg);
    assert_int_equal(parse(BASE "max_batch_size: 8\ndynamic_batching: {priority_levels: 3}\n"
                                "version_policy: {latest: 2}\n" IO),
                     0);
    assert_int_equal(g_cfg.batching.default_priority_level, 3); /* the lowest by default */
    assert_int_equal(g_cfg.latest_n, 2);
    sl_model_config_free(&g_cfg);
}

static void test_config_errors(void **state) {
    /* Typos are caught with a suggestion and the line. */
    expect_error(BASE "max_batchsize: 4\n" IO,
                 "models/m/config.yaml:2: unknown key 'max_batchsize' (did you mean "
                 "'max_batch_size'?)");
    expect_error(BASE IO "instance_group: {count: 1, knd: cpu}\n",
                 "config.yaml:6: unknown key 'knd' in instance_group (did you mean 'kind'?)");
    expect_error(BASE IO "zzzzzzzzzz: 1\n", "unknown key 'zzzzzzzzzz' (expected one of: name,");
    /* Required fields. */
    expect_error(IO, "config.yaml:1: backend is required");
    expect_error(BASE "outputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:1: inputs is required");
    expect_error("", "the file is empty");
    expect_error("- a\n", "config.yaml:1: the document must be a mapping, not a sequence");
    expect_error(BASE "inputs: []\noutputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:2: inputs must list at least one tensor");
    expect_error(BASE "inputs:\n  - {datatype: FP32, dims: [1]}\n"
                      "outputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:3: inputs[0].name is required");
    /* Values. */
    expect_error("name: other\n" BASE IO,
                 "config.yaml:1: name 'other' does not match the model directory 'm'");
    expect_error("backend: ../evil\n" IO, "backend '../evil' must be letters, digits and '_'");
    expect_error(BASE "inputs:\n  - {name: x, datatype: FP33, dims: [1]}\n"
                      "outputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:3: inputs[0].datatype: unknown datatype 'FP33'");
    expect_error(BASE "inputs:\n  - {name: x, datatype: FP32, dims: [1, 0]}\n"
                      "outputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:3: inputs[0].dims[1] must be -1 (any size) or a positive integer, "
                 "got '0'");
    expect_error(BASE "inputs:\n  - {name: x, datatype: FP32, dims: [1]}\n"
                      "  - {name: x, datatype: FP32, dims: [1]}\n"
                      "outputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "config.yaml:4: inputs[1].name: duplicate tensor name 'x' in inputs");
    expect_error(BASE "max_batch_size: 2\ninputs:\n  - {name: x, datatype: FP32, dims: [1,1,1,1,1,"
                      "1,1,1]}\noutputs:\n  - {name: y, datatype: FP32, dims: [1]}\n",
                 "inputs[0].dims has 8 dims, at most 7 allowed (the batch dimension is implicit)");
    expect_error(BASE "max_batch_size: -1\n" IO,
                 "config.yaml:2: max_batch_size must be between 0 and 65536, got -1");
    expect_error(BASE "max_batch_size: lots\n" IO,
                 "config.yaml:2: max_batch_size must be an integer, got 'lots'");
    /* Batching. */
    expect_error(BASE IO "dynamic_batching: {}\n",
                 "config.yaml:6: dynamic_batching needs max_batch_size > 0");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching:\n  preferred_batch_sizes: [4, 16]\n",
                 "config.yaml:8: dynamic_batching.preferred_batch_sizes[1] is 16, larger than "
                 "max_batch_size 8");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching:\n  preferred_batch_sizes: [4, 4]\n",
                 "preferred_batch_sizes[1]: 4 is listed twice");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching:\n  default_queue_policy: {timeout_action: drop}\n",
                 "config.yaml:8: dynamic_batching.default_queue_policy.timeout_action must be "
                 "reject or delay, got 'drop'");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching: {priority_levels: 2, default_priority_level: 3}\n",
                 "dynamic_batching.default_priority_level must be between 1 and 2, got 3");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching:\n  priority_levels: 2\n  priority_queue_policy:\n"
                      "    5: {max_queue_size: 1}\n",
                 "config.yaml:10: dynamic_batching.priority_queue_policy key '5' must be between "
                 "1 and 2");
    expect_error(BASE "max_batch_size: 8\n" IO
                      "dynamic_batching:\n  default_queue_policy: {allow_timeout_override: yes}\n",
                 "allow_timeout_override must be true or false, got 'yes'");
    /* Instances, warm-up, versions, cache, parameters. */
    expect_error(BASE IO "instance_group: {count: 0}\n",
                 "config.yaml:6: instance_group.count must be between 1 and 64, got 0");
    expect_error(BASE IO "instance_group: {kind: tpu}\n",
                 "instance_group.kind must be cpu or gpu, got 'tpu'");
    expect_error(BASE IO "warmup:\n  - {inputs: {nope: a.npy}}\n",
                 "config.yaml:7: warmup[0].inputs.nope: no input named 'nope' in inputs");
    expect_error(BASE IO "warmup:\n  - {inputs: {x: ../../etc/passwd}}\n",
                 "warmup[0].inputs.x must be a path relative to the model directory without '..'");
    expect_error(BASE IO "warmup:\n  - {batch_size: 2}\n",
                 "warmup[0].batch_size must be between 1 and 1, got 2");
    expect_error(BASE IO "version_policy: newest\n",
                 "config.yaml:6: version_policy must be `all`, {latest: N} or {specific: [...]}");
    expect_error(BASE IO "version_policy: {latest: 0}\n",
                 "version_policy.latest must be between 1 and 64, got 0");
    expect_error(BASE IO "version_policy: {specific: [1.0]}\n",
                 "config.yaml:6: version_policy.specific[0]: '1.0' is not a semantic version");
    expect_error(BASE IO "version_policy: {specific: [1.0.0, 1.0.0]}\n",
                 "version 1.0.0 is listed twice");
    expect_error(BASE IO "version_policy: {lastest: 2}\n",
                 "unknown key 'lastest' in version_policy (did you mean 'latest'?)");
    expect_error(BASE IO "response_cache: {enable: 1}\n",
                 "response_cache.enable must be true or false, got '1'");
    expect_error(BASE IO "parameters: {a: [1]}\n",
                 "config.yaml:6: parameters.a must be a scalar, not a sequence");
    expect_error(BASE IO "inputs: 3\n", "config.yaml:6: duplicate key 'inputs' (first on line 2)");

    /* Several problems are reported together, one line each. */
    assert_int_not_equal(parse("backend: onnx\nmax_batch_size: x\nfoo: 1\n" IO), 0);
    assert_non_null(strstr(g_err.data, "models/m/config.yaml:2: max_batch_size must be"));
    assert_non_null(strstr(g_err.data, "models/m/config.yaml:3: unknown key 'foo'"));
    assert_non_null(strchr(g_err.data, '\n') + 1 < g_err.data + g_err.len); /* two lines */
    /* A failed parse leaves cfg zeroed (nothing to free). */
    assert_null(g_cfg.backend);
    assert_int_equal(g_cfg.n_inputs, 0);
}

/* ---- semver ---- */

static void test_semver(void **state) {
    sl_semver_t v;
    assert_int_equal(sl_semver_parse("1.2.3", &v), 0);
    assert_int_equal(v.major, 1);
    assert_int_equal(v.minor, 2);
    assert_int_equal(v.patch, 3);
    assert_string_equal(v.pre, "");
    assert_int_equal(sl_semver_parse("1.0.0-rc.1+build.5", &v), 0);
    assert_string_equal(v.pre, "rc.1");
    const char *bad[] = {"1",        "1.2",    "1.2.3.4", "01.2.3",     "1.2.3-",
                         "1.2.3-01", "1.2.3+", "a.b.c",   "1.2.3-a..b", " 1.2.3",
                         "1.2.3 ",   "v1.2.3", "-1.2.3",  "1.2.3-a_b",  "99999999999999999999.0.0",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sl_semver_parse(bad[i], &v) == 0) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            fail();
        }
    }
    /* SemVer 2.0.0's own precedence example, plus numeric ordering of fields. */
    const char *order[] = {"0.9.9",      "1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta",
                           "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
                           "1.0.0",      "1.2.0",        "1.10.0",        "2.0.0"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        for (size_t j = 0; j < sizeof order / sizeof order[0]; j++) {
            sl_semver_t a, b;
            assert_int_equal(sl_semver_parse(order[i], &a), 0);
            assert_int_equal(sl_semver_parse(order[j], &b), 0);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (sl_semver_cmp(&a, &b) != want) {
                fprintf(stderr, "%s vs %s: got %d\n", order[i], order[j], sl_semver_cmp(&a, &b));
                fail();
            }
        }
    }
    sl_semver_t a, b;
    sl_semver_parse("1.0.0+a", &a);
    sl_semver_parse("1.0.0+b", &b);
    assert_int_equal(sl_semver_cmp(&a, &b), 0); /* build metadata is ignored */
}

/* ---- manifest.json ---- */

#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void expect_manifest_error(const char *json, const char *want) {
    sl_manifest_t m;
    sl_buf_reset(&g_err);
    int rc = sl_manifest_parse("manifest.json", json, strlen(json), &m, &g_err);
    if (rc == 0 || !strstr(g_err.data, want)) {
        fprintf(stderr, "%s\nexpected: %s\ngot: %s\n", json, want, g_err.data ? g_err.data : "");
        if (rc == 0) sl_manifest_free(&m);
        fail();
    }
    assert_null(m.artifact);
}

static void test_manifest(void **state) {
    const char *ok = "{\"artifact\": \"model.onnx\", \"sha256\": \"" SHA "\", \"semver\": "
                     "\"1.2.0\", \"trained_at\": \"2024-05-01T12:00:00.5+02:00\", \"metrics\": "
                     "{\"auc\": 0.9}, \"feature_schema\": [{\"name\": \"amount\"}]}";
    sl_manifest_t m;
    assert_int_equal(sl_manifest_parse("manifest.json", ok, strlen(ok), &m, &g_err), 0);
    assert_string_equal(m.artifact, "model.onnx");
    assert_string_equal(m.sha256, SHA);
    assert_string_equal(m.semver, "1.2.0");
    assert_string_equal(m.trained_at, "2024-05-01T12:00:00.5+02:00");
    assert_string_equal(m.metrics_json, "{\"auc\":0.9}");
    assert_string_equal(m.feature_schema_json, "[{\"name\":\"amount\"}]");
    sl_manifest_free(&m);
    /* Upper-case hex is accepted and stored lower-case; optional fields may be absent. */
    const char *upper = "{\"artifact\":\"a.ubj\",\"sha256\":\"BA7816BF8F01CFEA414140DE5DAE2223B00"
                        "361A396177A9CB410FF61F20015AD\",\"semver\":\"0.1.0-rc.1\"}";
    assert_int_equal(sl_manifest_parse("manifest.json", upper, strlen(upper), &m, &g_err), 0);
    assert_string_equal(m.sha256, SHA);
    assert_null(m.trained_at);
    assert_null(m.metrics_json);
    sl_manifest_free(&m);

    expect_manifest_error("{\"sha256\":\"" SHA "\",\"semver\":\"1.0.0\"}",
                          "manifest.json: missing field 'artifact'");
    expect_manifest_error("{\"artifact\":\"../x\",\"sha256\":\"" SHA "\",\"semver\":\"1.0.0\"}",
                          "field 'artifact' must be a file name in the version directory");
    expect_manifest_error("{\"artifact\":\"a\",\"sha256\":\"abc\",\"semver\":\"1.0.0\"}",
                          "field 'sha256' must be 64 hexadecimal digits");
    expect_manifest_error("{\"artifact\":\"a\",\"sha256\":\"" SHA "\",\"semver\":\"1.0\"}",
                          "field 'semver' must be a semantic version");
    expect_manifest_error("{\"artifact\":\"a\",\"sha256\":\"" SHA
                          "\",\"semver\":\"1.0.0\",\"trained_at\":\"yesterday\"}",
                          "field 'trained_at' must be an RFC 3339 time");
    expect_manifest_error("{\"artifact\":\"a\",\"sha256\":\"" SHA
                          "\",\"semver\":\"1.0.0\",\"metrics\":3}",
                          "field 'metrics' must be an object");
    expect_manifest_error("{\"artifact\":\"a\",\"sha256\":\"" SHA
                          "\",\"semver\":\"1.0.0\",\"sha\":1}",
                          "unknown field 'sha'");
    expect_manifest_error("[1]", "manifest.json: expected a JSON object");
    expect_manifest_error("{\"artifact\":", "manifest.json: ");
    expect_manifest_error("{\"artifact\":7,\"sha256\":\"" SHA "\",\"semver\":\"1.0.0\"}",
                          "field 'artifact' must be a string");
}

/* ---- the repository on disk ---- */

static char g_root[256];

static void write_manifest(const char *ver, const char *artifact, const char *sha) {
    char rel[128], body[512];
    snprintf(rel, sizeof rel, "m/%s/manifest.json", ver);
    snprintf(body, sizeof body, "{\"artifact\":\"%s\",\"sha256\":\"%s\",\"semver\":\"%s\"}",
             artifact, sha, ver);
    write_repo_file(g_root, rel, body);
}

static int repo_setup(void **state) {
    snprintf(g_root, sizeof g_root, "/tmp/sl_repo_test_XXXXXX");
    assert_non_null(mkdtemp(g_root));
    make_repo_dir(g_root, "m");
    write_repo_file(g_root, "m/config.yaml", BASE IO);
    const char *versions[] = {"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "0.9.0"};
    for (size_t i = 0; i < 5; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "m/%s", versions[i]);
        make_repo_dir(g_root, rel);
        snprintf(rel, sizeof rel, "m/%s/model.bin", versions[i]);
        write_repo_file(g_root, rel, "abc");
        write_manifest(versions[i], "model.bin", SHA);
    }
    make_repo_dir(g_root, "m/notes");       /* not a version: ignored */
    make_repo_dir(g_root, ".hidden");       /* hidden: ignored */
    make_repo_dir(g_root, "bad name");      /* unusable name: skipped */
    write_repo_file(g_root, "README", "x"); /* a file: ignored */
    make_repo_dir(g_root, "a_model");
    return 0;
}

static int repo_teardown(void **state) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    assert_int_equal(system(cmd), 0);
    sl_buf_free(&g_err);
    return 0;
}

static char *join_strv(char **v) {
    static char out[512];
    out[0] = '\0';
    for (size_t i = 0; v[i]; i++) {
        strcat(out, i ? " " : "");
        strcat(out, v[i]);
    }
    return out;
}

static void test_repo_listing_and_policies(void **state) {
    char **models = NULL;
    assert_int_equal(sl_repo_list_models(g_root, &models, &g_err), 0);
    assert_string_equal(join_strv(models), "a_model m");
    sl_repo_strv_free(models);
    assert_int_equal(sl_repo_list_models("/nonexistent/repo", &models, &g_err), SL_EIO);

    char **avail = NULL;
    assert_int_equal(sl_repo_list_versions(g_root, "m", &avail, &g_err), 0);
    assert_string_equal(join_strv(avail), "2.0.0-rc.1 1.10.0 1.2.0 1.0.0 0.9.0");

    sl_model_config_t cfg;
    assert_int_equal(sl_repo_read_config(g_root, "m", &cfg, &g_err), 0);
    char **sel = sl_repo_select_versions(&cfg, avail, &g_err);
    assert_string_equal(join_strv(sel), "2.0.0-rc.1");
    sl_repo_strv_free(sel);
    cfg.latest_n = 3;
    sel = sl_repo_select_versions(&cfg, avail, &g_err);
    assert_string_equal(join_strv(sel), "2.0.0-rc.1 1.10.0 1.2.0");
    sl_repo_strv_free(sel);
    cfg.version_policy = SL_VERSIONS_ALL;
    sel = sl_repo_select_versions(&cfg, avail, &g_err);
    assert_string_equal(join_strv(sel), "2.0.0-rc.1 1.10.0 1.2.0 1.0.0 0.9.0");
    sl_repo_strv_free(sel);
    sl_model_config_free(&cfg);

    write_repo_file(g_root, "m/config.yaml",
                    BASE IO "version_policy: {specific: [1.2.0, 0.9.0, 3.0.0]}\n");
    assert_int_equal(sl_repo_read_config(g_root, "m", &cfg, &g_err), 0);
    sl_buf_reset(&g_err);
    sel = sl_repo_select_versions(&cfg, avail, &g_err);
    assert_string_equal(join_strv(sel), "1.2.0 0.9.0");
    assert_non_null(strstr(g_err.data, "version 3.0.0 named in version_policy.specific of "
                                       "model 'm' is not in the repository"));
    sl_repo_strv_free(sel);
    sl_model_config_free(&cfg);
    sl_repo_strv_free(avail);

    /* Config errors name the file relative to the repository's last component. */
    const char *base = strrchr(g_root, '/') + 1;
    char want[128];
    write_repo_file(g_root, "m/config.yaml", BASE "bogus: 1\n" IO);
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_read_config(g_root, "m", &cfg, &g_err), SL_EINVAL);
    snprintf(want, sizeof want, "%s/m/config.yaml:2: unknown key 'bogus'", base);
    assert_non_null(strstr(g_err.data, want));
    assert_int_equal(sl_repo_read_config(g_root, "nope", &cfg, &g_err), SL_ENOENT);
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_read_config(g_root, "a_model", &cfg, &g_err), SL_EINVAL);
    assert_non_null(strstr(g_err.data, "a_model/config.yaml: file not found"));
    write_repo_file(g_root, "m/config.yaml", BASE IO);

    assert_true(sl_repo_name_ok("fraud-v2.x_1"));
    assert_false(sl_repo_name_ok(".."));
    assert_false(sl_repo_name_ok("a/b"));
    assert_false(sl_repo_name_ok(""));
}

static void test_repo_manifest_and_sha(void **state) {
    char hex[65];
    char p[512];
    snprintf(p, sizeof p, "%s/m/1.0.0/model.bin", g_root);
    assert_int_equal(sl_repo_sha256_file(p, hex), 0);
    assert_string_equal(hex, SHA); /* sha256("abc") */
    assert_int_equal(sl_repo_sha256_file("/nonexistent", hex), SL_EIO);

    sl_manifest_t m;
    char *artifact = NULL;
    assert_int_equal(sl_repo_read_manifest(g_root, "m", "1.0.0", &m, &artifact, &g_err), 0);
    assert_string_equal(artifact, p[0] == '/' ? artifact : p); /* absolute */
    assert_int_equal(artifact[0], '/');
    assert_int_equal(sl_repo_verify_artifact(g_root, "m", "1.0.0", &m, artifact, &g_err), 0);

    /* A changed artifact is refused with both digests (abbreviated) and the repository path. */
    write_repo_file(g_root, "m/1.0.0/model.bin", "abd");
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_verify_artifact(g_root, "m", "1.0.0", &m, artifact, &g_err),
                     SL_EINVAL);
    char want[160];
    snprintf(want, sizeof want,
             "%s/m/1.0.0/model.bin: sha256 mismatch (manifest says %.12s..., "
             "file is ",
             strrchr(g_root, '/') + 1, SHA);
    assert_non_null(strstr(g_err.data, want));
    assert_null(strstr(g_err.data, g_root)); /* no absolute path */
    write_repo_file(g_root, "m/1.0.0/model.bin", "abc");
    sl_manifest_free(&m);
    free(artifact);

    /* A symlinked artifact is followed. */
    snprintf(p, sizeof p, "%s/m/1.2.0/model.bin", g_root);
    unlink(p);
    char target[512];
    snprintf(target, sizeof target, "%s/m/1.0.0/model.bin", g_root);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(sl_repo_read_manifest(g_root, "m", "1.2.0", &m, &artifact, &g_err), 0);
    assert_string_equal(artifact, target);
    sl_manifest_free(&m);
    free(artifact);

    /* semver must equal the directory; the artifact must exist. */
    write_manifest("1.10.0", "model.bin", SHA);
    write_repo_file(g_root, "m/1.10.0/manifest.json",
                    "{\"artifact\":\"model.bin\",\"sha256\":\"" SHA "\",\"semver\":\"1.1.0\"}");
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_read_manifest(g_root, "m", "1.10.0", &m, &artifact, &g_err),
                     SL_EINVAL);
    assert_non_null(strstr(g_err.data, "m/1.10.0/manifest.json: semver '1.1.0' does not match "
                                       "the version directory '1.10.0'"));
    write_manifest("1.10.0", "missing.bin", SHA);
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_read_manifest(g_root, "m", "1.10.0", &m, &artifact, &g_err),
                     SL_EINVAL);
    assert_non_null(strstr(g_err.data, "m/1.10.0/missing.bin: the artifact named in "
                                       "manifest.json does not exist"));
    assert_null(artifact);
    write_manifest("1.10.0", "model.bin", SHA);
    sl_buf_reset(&g_err);
    assert_int_equal(sl_repo_read_manifest(g_root, "m", "9.9.9", &m, &artifact, &g_err), SL_EINVAL);
    assert_non_null(strstr(g_err.data, "m/9.9.9/manifest.json: file not found"));
}

static void test_repo_fingerprint(void **state) {
    uint64_t all = sl_repo_fingerprint(g_root, "m", NULL);
    uint64_t v1 = sl_repo_fingerprint(g_root, "m", "1.0.0");
    uint64_t v2 = sl_repo_fingerprint(g_root, "m", "0.9.0");
    assert_int_not_equal(all, 0);
    assert_int_equal(sl_repo_fingerprint(g_root, "m", NULL), all); /* stable */
    assert_int_equal(sl_repo_fingerprint(g_root, "gone", NULL), 0);
    write_repo_file(g_root, "m/1.0.0/manifest.json",
                    "{\"artifact\":\"model.bin\",\"sha256\":\"" SHA
                    "\",\"semver\":\"1.0.0\",\"metrics\":{}}");
    assert_int_not_equal(sl_repo_fingerprint(g_root, "m", "1.0.0"), v1);
    assert_int_equal(sl_repo_fingerprint(g_root, "m", "0.9.0"), v2);
    assert_int_not_equal(sl_repo_fingerprint(g_root, "m", NULL), all);
    uint64_t all2 = sl_repo_fingerprint(g_root, "m", NULL);
    make_repo_dir(g_root, "m/3.0.0"); /* a new version directory */
    assert_int_not_equal(sl_repo_fingerprint(g_root, "m", NULL), all2);
    write_repo_file(g_root, "m/config.yaml",
                    BASE IO "max_batch_size: 0\n"); /* config touches every version */
    assert_int_not_equal(sl_repo_fingerprint(g_root, "m", "0.9.0"), v2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_yaml_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repo_listing_and_policies, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_repo_manifest_and_sha, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_repo_fingerprint, repo_setup, repo_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
