/* Parsing and validation of a model's config.yaml (on the generic YAML tree of core/yaml_doc.h)
 * and its JSON rendering for the config endpoints. Errors name file:line and what was expected;
 * unknown keys are errors so that typos are caught. manifest.json and semver: model_manifest.c.
 *
 * config.yaml schema (every key optional unless marked required):
 *
 *   name: fraud                     # must equal the model's directory name
 *   backend: xgboost                # required: onnx, xgboost or a shared-object backend
 *   platform: xgboost_ubj           # reported in metadata; default "onnx_onnxv1" for onnx, else
 *                                   # the backend name
 *   max_batch_size: 64              # 0..65536, default 0 (no batching: dims are full shapes)
 *   inputs:                         # required, 1..64 entries, names unique
 *     - name: features
 *       datatype: FP32              # OIP name or Triton's TYPE_FP32
 *       dims: [12]                  # up to 8 dims (7 when batching), each -1 or >= 1; the
 *                                   # batch dimension is excluded when max_batch_size > 0
 *   outputs: [...]                  # required, same form as inputs
 *   dynamic_batching:               # needs max_batch_size > 0; `dynamic_batching: {}` enables
 *     preferred_batch_sizes: [8, 16]  # each 1..max_batch_size, unique, at most 16
 *     max_queue_delay_us: 500       # 0..60000000, default 0
 *     priority_levels: 2            # 0..16, default 0 (one level)
 *     default_priority_level: 2     # 1..priority_levels, default priority_levels (the lowest)
 *     default_queue_policy:         # applies to every level without its own policy
 *       max_queue_size: 128         # 0 (unbounded)..1048576
 *       default_timeout_us: 0       # 0 (none)..3600000000
 *       allow_timeout_override: false
 *       timeout_action: reject      # reject | delay
 *     priority_queue_policy:
 *       1: {max_queue_size: 16}     # keys are levels 1..priority_levels; same fields
 *   instance_group: {count: 2, kind: cpu, threads: 1}  # count 1..64, kind cpu|gpu,
 *                                                      # threads 1..256 (intra-op per instance)
 *   warmup:                         # at most 16 entries, run before a version is READY
 *     - name: zeros                 # default "warmup<i>"
 *       batch_size: 1               # 1..max(1, max_batch_size)
 *       random: false               # random values instead of zeros (seeded)
 *       inputs: {features: sample.npy}  # .npy files relative to the model directory
 *   version_policy: {latest: 1}     # default; or {specific: [1.0.0, 1.2.0]} or `all`
 *   response_cache: {enable: true, max_entries: 1024}  # max_entries 1..1048576
 *   parameters: {key: value}        # strings for the backend, at most 64
 */
#include "inference/model_config.h"

#include "core/common.h"
#include "core/yaml_doc.h"
#include "oip/oip_types.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The OIP codecs refuse requests with more tensors than the wire limit, so no model may need
 * more. */
_Static_assert(SL_MODEL_MAX_TENSORS <= SL_OIP_MAX_TENSORS,
               "a model may declare more tensors than an OIP request can carry");

#define MAX_NAME_BYTES  256
#define MAX_BATCH       65536
#define MAX_QUEUE_DELAY 60000000ull   /* 60 s */
#define MAX_TIMEOUT_US  3600000000ull /* 1 h */
#define MAX_QUEUE_SIZE  (1u << 20)
#define MAX_THREADS     256
#define MAX_WARMUP      16
#define MAX_CACHE       (1u << 20)

typedef struct {
    sl_yaml_errors_t ye;
} pc_t;

static void perr(pc_t *c, const sl_yaml_node_t *at, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(pc_t *c, const sl_yaml_node_t *at, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_yaml_verror(&c->ye, at, status, fmt, ap);
    va_end(ap);
}

/* ---- small typed readers; `what` is the key path used in messages ---- */

/* A string: a non-empty scalar without control characters, at most max bytes. */
static bool get_str(pc_t *c, const sl_yaml_node_t *n, const char *what, size_t max, char **out) {
    if (!sl_yaml_want(&c->ye, n, SL_YAML_SCALAR, what)) return false;
    if (n->len == 0 || sl_yaml_is_null(n)) {
        perr(c, n, SL_EINVAL, "%s must not be empty", what);
        return false;
    }
    if (n->len > max) {
        perr(c, n, SL_EINVAL, "%s is longer than %zu bytes", what, max);
        return false;
    }
    for (size_t i = 0; i < n->len; i++) {
        if ((unsigned char)n->value[i] < 0x20 || n->value[i] == 0x7f) {
            perr(c, n, SL_EINVAL, "%s contains a control character", what);
            return false;
        }
    }
    free(*out);
    *out = sl_strdup(n->value);
    return true;
}

static bool get_int(pc_t *c, const sl_yaml_node_t *n, const char *what, int64_t min, int64_t max,
                    int64_t *out) {
    int rc = sl_yaml_get_int64(n, min, max, out);
    if (rc == 0) return true;
    if (rc == SL_ERANGE) {
        perr(c, n, SL_EINVAL, "%s must be between %" PRId64 " and %" PRId64 ", got %.32s", what,
             min, max, n->value);
    } else if (n->kind == SL_YAML_SCALAR) {
        perr(c, n, SL_EINVAL, "%s must be an integer, got '%.32s'", what, n->value);
    } else {
        perr(c, n, SL_EINVAL, "%s must be an integer, not %s", what, sl_yaml_kind_name(n->kind));
    }
    return false;
}

static bool get_u32(pc_t *c, const sl_yaml_node_t *n, const char *what, uint32_t min, uint32_t max,
                    uint32_t *out) {
    int64_t v;
    if (!get_int(c, n, what, min, max, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

static bool get_u64(pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t max,
                    uint64_t *out) {
    int64_t v;
    if (!get_int(c, n, what, 0, (int64_t)max, &v)) return false;
    *out = (uint64_t)v;
    return true;
}

static bool get_bool(pc_t *c, const sl_yaml_node_t *n, const char *what, bool *out) {
    if (sl_yaml_get_bool(n, out) == 0) return true;
    if (n->kind == SL_YAML_SCALAR)
        perr(c, n, SL_EINVAL, "%s must be true or false, got '%.32s'", what, n->value);
    else
        perr(c, n, SL_EINVAL, "%s must be true or false, not %s", what, sl_yaml_kind_name(n->kind));
    return false;
}

/* ---- sections ---- */

static void parse_tensors(pc_t *c, const sl_yaml_node_t *seq, const char *what, bool batching,
                          sluice_tensor_desc_t *out, uint32_t *n_out) {
    static const char *const keys[] = {"name", "datatype", "dims", NULL};
    if (!sl_yaml_want(&c->ye, seq, SL_YAML_SEQ, what)) return;
    if (seq->n == 0) perr(c, seq, SL_EINVAL, "%s must list at least one tensor", what);
    if (seq->n > SL_MODEL_MAX_TENSORS) {
        perr(c, seq, SL_ELIMIT, "%s has %zu tensors, more than the limit of %d", what, seq->n,
             SL_MODEL_MAX_TENSORS);
        return;
    }
    uint32_t max_dims = SLUICE_MAX_DIMS - (batching ? 1 : 0);
    char path[96];
    for (size_t i = 0; i < seq->n; i++) {
        const sl_yaml_node_t *t = seq->items[i];
        snprintf(path, sizeof path, "%s[%zu]", what, i);
        if (!sl_yaml_want(&c->ye, t, SL_YAML_MAP, path)) continue;
        sl_yaml_check_keys(&c->ye, t, keys, path);
        sluice_tensor_desc_t *d = &out[(*n_out)++];
        const sl_yaml_node_t *v;
        char field[128];
        snprintf(field, sizeof field, "%s.name", path);
        if (!(v = sl_yaml_map_get(t, "name"))) {
            perr(c, t, SL_EINVAL, "%s is required", field);
        } else {
            char *name = NULL;
            if (get_str(c, v, field, MAX_NAME_BYTES, &name)) {
                for (uint32_t j = 0; j + 1 < *n_out; j++) {
                    if (out[j].name && strcmp(out[j].name, name) == 0) {
                        perr(c, v, SL_EINVAL, "%s: duplicate tensor name '%.64s' in %s", field,
                             name, what);
                    }
                }
                d->name = name;
            }
        }
        snprintf(field, sizeof field, "%s.datatype", path);
        if (!(v = sl_yaml_map_get(t, "datatype"))) {
            perr(c, t, SL_EINVAL, "%s is required", field);
        } else if (sl_yaml_want(&c->ye, v, SL_YAML_SCALAR, field)) {
            d->dtype = sl_dtype_from_config(v->value);
            if (d->dtype == SLUICE_DT_INVALID) {
                perr(c, v, SL_EINVAL,
                     "%s: unknown datatype '%.32s' (expected BOOL, UINT8..UINT64, INT8..INT64, "
                     "FP16, BF16, FP32, FP64 or BYTES, optionally as TYPE_FP32)",
                     field, v->value);
            }
        }
        snprintf(field, sizeof field, "%s.dims", path);
        if (!(v = sl_yaml_map_get(t, "dims"))) {
            perr(c, t, SL_EINVAL, "%s is required", field);
        } else if (sl_yaml_want(&c->ye, v, SL_YAML_SEQ, field)) {
            if (v->n > max_dims) {
                perr(c, v, SL_EINVAL, "%s has %zu dims, at most %" PRIu32 " allowed%s", field, v->n,
                     max_dims, batching ? " (the batch dimension is implicit)" : "");
                continue;
            }
            d->ndim = (uint32_t)v->n;
            for (size_t j = 0; j < v->n; j++) {
                int64_t dim = 0;
                if (sl_yaml_get_int64(v->items[j], -1, INT32_MAX, &dim) != 0 || dim == 0) {
                    perr(c, v->items[j], SL_EINVAL,
                         "%s[%zu] must be -1 (any size) or a positive integer, got '%.32s'", field,
                         j, v->items[j]->kind == SL_YAML_SCALAR ? v->items[j]->value : "?");
                }
                d->dims[j] = dim;
            }
        }
    }
}

static void parse_queue_policy(pc_t *c, const sl_yaml_node_t *m, const char *what,
                               sl_queue_policy_t *p) {
    static const char *const keys[] = {"max_queue_size", "default_timeout_us",
                                       "allow_timeout_override", "timeout_action", NULL};
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, what)) return;
    sl_yaml_check_keys(&c->ye, m, keys, what);
    char field[128];
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "max_queue_size"))) {
        snprintf(field, sizeof field, "%s.max_queue_size", what);
        get_u32(c, v, field, 0, MAX_QUEUE_SIZE, &p->max_queue_size);
    }
    if ((v = sl_yaml_map_get(m, "default_timeout_us"))) {
        snprintf(field, sizeof field, "%s.default_timeout_us", what);
        get_u64(c, v, field, MAX_TIMEOUT_US, &p->default_timeout_us);
    }
    if ((v = sl_yaml_map_get(m, "allow_timeout_override"))) {
        snprintf(field, sizeof field, "%s.allow_timeout_override", what);
        get_bool(c, v, field, &p->allow_timeout_override);
    }
    if ((v = sl_yaml_map_get(m, "timeout_action"))) {
        snprintf(field, sizeof field, "%s.timeout_action", what);
        if (sl_yaml_want(&c->ye, v, SL_YAML_SCALAR, field)) {
            if (!strcmp(v->value, "reject") || !strcmp(v->value, "REJECT")) {
                p->timeout_action = SL_TIMEOUT_REJECT;
            } else if (!strcmp(v->value, "delay") || !strcmp(v->value, "DELAY")) {
                p->timeout_action = SL_TIMEOUT_DELAY;
            } else {
                perr(c, v, SL_EINVAL, "%s must be reject or delay, got '%.32s'", field, v->value);
            }
        }
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void parse_batching(pc_t *c, const sl_yaml_node_t *m, sl_model_config_t *cfg) {
    static const char *const keys[] = {"preferred_batch_sizes",
                                       "max_queue_delay_us",
                                       "priority_levels",
                                       "default_priority_level",
                                       "default_queue_policy",
                                       "priority_queue_policy",
                                       NULL};
    sl_dynamic_batching_t *db = &cfg->batching;
    if (sl_yaml_is_null(m)) {
        db->enabled = true;
    } else if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "dynamic_batching")) {
        return;
    }
    db->enabled = true;
    if (cfg->max_batch_size == 0) {
        perr(c, m, SL_EINVAL, "dynamic_batching needs max_batch_size > 0");
    }
    if (m->kind != SL_YAML_MAP) return;
    sl_yaml_check_keys(&c->ye, m, keys, "dynamic_batching");
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "preferred_batch_sizes")) &&
        sl_yaml_want(&c->ye, v, SL_YAML_SEQ, "dynamic_batching.preferred_batch_sizes")) {
        if (v->n > SL_MODEL_MAX_PREFERRED) {
            perr(c, v, SL_EINVAL,
                 "dynamic_batching.preferred_batch_sizes has %zu entries, at "
                 "most %d allowed",
                 v->n, SL_MODEL_MAX_PREFERRED);
        } else {
            for (size_t i = 0; i < v->n; i++) {
                uint32_t s;
                char field[96];
                snprintf(field, sizeof field, "dynamic_batching.preferred_batch_sizes[%zu]", i);
                if (!get_u32(c, v->items[i], field, 1, MAX_BATCH, &s)) continue;
                if (cfg->max_batch_size && s > cfg->max_batch_size) {
                    perr(c, v->items[i], SL_EINVAL,
                         "%s is %" PRIu32 ", larger than max_batch_size %" PRIu32, field, s,
                         cfg->max_batch_size);
                    continue;
                }
                bool dup = false;
                for (uint32_t j = 0; j < db->n_preferred; j++)
                    dup |= db->preferred[j] == s;
                if (dup) {
                    perr(c, v->items[i], SL_EINVAL, "%s: %" PRIu32 " is listed twice", field, s);
                    continue;
                }
                db->preferred[db->n_preferred++] = s;
            }
            qsort(db->preferred, db->n_preferred, sizeof db->preferred[0], cmp_u32);
        }
    }
    if ((v = sl_yaml_map_get(m, "max_queue_delay_us"))) {
        get_u64(c, v, "dynamic_batching.max_queue_delay_us", MAX_QUEUE_DELAY,
                &db->max_queue_delay_us);
    }
    if ((v = sl_yaml_map_get(m, "priority_levels"))) {
        get_u32(c, v, "dynamic_batching.priority_levels", 0, SL_MODEL_MAX_PRIORITIES,
                &db->priority_levels);
    }
    db->default_priority_level = db->priority_levels;
    if ((v = sl_yaml_map_get(m, "default_priority_level"))) {
        if (db->priority_levels == 0) {
            perr(c, v, SL_EINVAL,
                 "dynamic_batching.default_priority_level needs priority_levels > 0");
        } else {
            get_u32(c, v, "dynamic_batching.default_priority_level", 1, db->priority_levels,
                    &db->default_priority_level);
        }
    }
    if ((v = sl_yaml_map_get(m, "default_queue_policy"))) {
        parse_queue_policy(c, v, "dynamic_batching.default_queue_policy", &db->default_policy);
    }
    for (uint32_t l = 0; l <= SL_MODEL_MAX_PRIORITIES; l++)
        db->priority_policy[l] = db->default_policy;
    if ((v = sl_yaml_map_get(m, "priority_queue_policy")) &&
        sl_yaml_want(&c->ye, v, SL_YAML_MAP, "dynamic_batching.priority_queue_policy")) {
        if (db->priority_levels == 0 && v->n > 0) {
            perr(c, v, SL_EINVAL,
                 "dynamic_batching.priority_queue_policy needs priority_levels > 0");
        }
        for (size_t i = 0; i < v->n && db->priority_levels; i++) {
            uint32_t level;
            char field[96];
            snprintf(field, sizeof field, "dynamic_batching.priority_queue_policy key '%.16s'",
                     v->keys[i]->value);
            if (!get_u32(c, v->keys[i], field, 1, db->priority_levels, &level)) continue;
            snprintf(field, sizeof field, "dynamic_batching.priority_queue_policy.%" PRIu32, level);
            parse_queue_policy(c, v->items[i], field, &db->priority_policy[level]);
            db->has_priority_policy[level] = true;
        }
    }
}

static void parse_instances(pc_t *c, const sl_yaml_node_t *m, sl_model_config_t *cfg) {
    static const char *const keys[] = {"count", "kind", "threads", NULL};
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "instance_group")) return;
    sl_yaml_check_keys(&c->ye, m, keys, "instance_group");
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "count"))) {
        get_u32(c, v, "instance_group.count", 1, SL_MODEL_MAX_INSTANCES, &cfg->instance_count);
    }
    if ((v = sl_yaml_map_get(m, "threads"))) {
        get_u32(c, v, "instance_group.threads", 1, MAX_THREADS, &cfg->instance_threads);
    }
    if ((v = sl_yaml_map_get(m, "kind")) &&
        sl_yaml_want(&c->ye, v, SL_YAML_SCALAR, "instance_group.kind")) {
        if (!strcmp(v->value, "cpu") || !strcmp(v->value, "KIND_CPU")) {
            cfg->instance_kind = SLUICE_DEVICE_CPU;
        } else if (!strcmp(v->value, "gpu") || !strcmp(v->value, "KIND_GPU")) {
            cfg->instance_kind = SLUICE_DEVICE_GPU;
        } else {
            perr(c, v, SL_EINVAL, "instance_group.kind must be cpu or gpu, got '%.32s'", v->value);
        }
    }
}

/* A relative path inside the model directory: no absolute path, no "..", no empty parts. */
static bool safe_relative_path(const char *p) {
    if (!*p || p[0] == '/') return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
            return false;
        }
        s += n + (e ? 1 : 0);
        if (e && !*s) return false;
    }
    return true;
}

static int input_index(const sl_model_config_t *cfg, const char *name) {
    for (uint32_t i = 0; i < cfg->n_inputs; i++) {
        if (cfg->inputs[i].name && strcmp(cfg->inputs[i].name, name) == 0) return (int)i;
    }
    return -1;
}

static void parse_warmup(pc_t *c, const sl_yaml_node_t *seq, sl_model_config_t *cfg) {
    static const char *const keys[] = {"name", "batch_size", "random", "inputs", NULL};
    if (!sl_yaml_want(&c->ye, seq, SL_YAML_SEQ, "warmup")) return;
    if (seq->n > MAX_WARMUP) {
        perr(c, seq, SL_EINVAL, "warmup has %zu entries, at most %d allowed", seq->n, MAX_WARMUP);
        return;
    }
    cfg->warmup = sl_calloc(seq->n ? seq->n : 1, sizeof *cfg->warmup);
    for (size_t i = 0; i < seq->n; i++) {
        const sl_yaml_node_t *w = seq->items[i];
        char path[32], field[160];
        snprintf(path, sizeof path, "warmup[%zu]", i);
        if (!sl_yaml_want(&c->ye, w, SL_YAML_MAP, path)) continue;
        sl_yaml_check_keys(&c->ye, w, keys, path);
        sl_warmup_t *wu = &cfg->warmup[cfg->n_warmup++];
        wu->batch_size = 1;
        const sl_yaml_node_t *v;
        if ((v = sl_yaml_map_get(w, "name"))) {
            snprintf(field, sizeof field, "%s.name", path);
            get_str(c, v, field, MAX_NAME_BYTES, &wu->name);
        }
        if (!wu->name) {
            char def[32];
            snprintf(def, sizeof def, "warmup%zu", i);
            wu->name = sl_strdup(def);
        }
        if ((v = sl_yaml_map_get(w, "batch_size"))) {
            snprintf(field, sizeof field, "%s.batch_size", path);
            uint32_t max = cfg->max_batch_size ? cfg->max_batch_size : 1;
            get_u32(c, v, field, 1, max, &wu->batch_size);
        }
        if ((v = sl_yaml_map_get(w, "random"))) {
            snprintf(field, sizeof field, "%s.random", path);
            get_bool(c, v, field, &wu->random);
        }
        if ((v = sl_yaml_map_get(w, "inputs"))) {
            snprintf(field, sizeof field, "%s.inputs", path);
            if (!sl_yaml_want(&c->ye, v, SL_YAML_MAP, field)) continue;
            for (size_t j = 0; j < v->n; j++) {
                int k = input_index(cfg, v->keys[j]->value);
                snprintf(field, sizeof field, "%s.inputs.%.64s", path, v->keys[j]->value);
                if (k < 0) {
                    perr(c, v->keys[j], SL_EINVAL, "%s: no input named '%.64s' in inputs", field,
                         v->keys[j]->value);
                    continue;
                }
                char *file = NULL;
                if (!get_str(c, v->items[j], field, 1024, &file)) continue;
                if (!safe_relative_path(file)) {
                    perr(c, v->items[j], SL_EINVAL,
                         "%s must be a path relative to the model directory without '..', got "
                         "'%.64s'",
                         field, file);
                    free(file);
                    continue;
                }
                wu->data_file[k] = file;
            }
        }
    }
}

static void parse_version_policy(pc_t *c, const sl_yaml_node_t *v, sl_model_config_t *cfg) {
    static const char *const keys[] = {"latest", "specific", "all", NULL};
    if (v->kind == SL_YAML_SCALAR && !strcmp(v->value, "all")) {
        cfg->version_policy = SL_VERSIONS_ALL;
        return;
    }
    if (v->kind != SL_YAML_MAP || v->n != 1) {
        perr(c, v, SL_EINVAL, "version_policy must be `all`, {latest: N} or {specific: [...]}");
        return;
    }
    sl_yaml_check_keys(&c->ye, v, keys, "version_policy");
    const sl_yaml_node_t *k = v->keys[0], *x = v->items[0];
    if (!strcmp(k->value, "all")) {
        cfg->version_policy = SL_VERSIONS_ALL;
        if (!sl_yaml_is_null(x) && !(x->kind == SL_YAML_MAP && x->n == 0)) {
            perr(c, x, SL_EINVAL, "version_policy.all takes no value");
        }
    } else if (!strcmp(k->value, "latest")) {
        cfg->version_policy = SL_VERSIONS_LATEST;
        get_u32(c, x, "version_policy.latest", 1, SL_MODEL_MAX_VERSIONS, &cfg->latest_n);
    } else if (!strcmp(k->value, "specific")) {
        cfg->version_policy = SL_VERSIONS_SPECIFIC;
        if (!sl_yaml_want(&c->ye, x, SL_YAML_SEQ, "version_policy.specific")) return;
        if (x->n == 0 || x->n > SL_MODEL_MAX_VERSIONS) {
            perr(c, x, SL_EINVAL, "version_policy.specific must list 1 to %d versions",
                 SL_MODEL_MAX_VERSIONS);
            return;
        }
        cfg->specific = sl_calloc(x->n, sizeof *cfg->specific);
        for (size_t i = 0; i < x->n; i++) {
            const sl_yaml_node_t *s = x->items[i];
            char field[64];
            snprintf(field, sizeof field, "version_policy.specific[%zu]", i);
            sl_semver_t sv;
            if (!sl_yaml_want(&c->ye, s, SL_YAML_SCALAR, field)) continue;
            if (sl_semver_parse(s->value, &sv) != 0) {
                perr(c, s, SL_EINVAL, "%s: '%.64s' is not a semantic version (MAJOR.MINOR.PATCH)",
                     field, s->value);
                continue;
            }
            bool dup = false;
            for (uint32_t j = 0; j < cfg->n_specific; j++)
                dup |= strcmp(cfg->specific[j], s->value) == 0;
            if (dup) {
                perr(c, s, SL_EINVAL, "%s: version %.64s is listed twice", field, s->value);
                continue;
            }
            cfg->specific[cfg->n_specific++] = sl_strdup(s->value);
        }
    }
}

static void parse_cache(pc_t *c, const sl_yaml_node_t *m, sl_model_config_t *cfg) {
    static const char *const keys[] = {"enable", "max_entries", NULL};
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "response_cache")) return;
    sl_yaml_check_keys(&c->ye, m, keys, "response_cache");
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "enable")))
        get_bool(c, v, "response_cache.enable", &cfg->response_cache);
    if ((v = sl_yaml_map_get(m, "max_entries"))) {
        get_u32(c, v, "response_cache.max_entries", 1, MAX_CACHE, &cfg->response_cache_entries);
    }
}

static void parse_params(pc_t *c, const sl_yaml_node_t *m, sl_model_config_t *cfg) {
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "parameters")) return;
    if (m->n > SL_MODEL_MAX_PARAMS) {
        perr(c, m, SL_EINVAL, "parameters has %zu entries, at most %d allowed", m->n,
             SL_MODEL_MAX_PARAMS);
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        char field[96];
        snprintf(field, sizeof field, "parameters.%.64s", m->keys[i]->value);
        const sl_yaml_node_t *v = m->items[i];
        if (!sl_yaml_want(&c->ye, v, SL_YAML_SCALAR, field)) continue;
        if (m->keys[i]->len == 0) {
            perr(c, m->keys[i], SL_EINVAL, "parameters: keys must not be empty");
            continue;
        }
        cfg->param_keys[cfg->n_params] = sl_strdup(m->keys[i]->value);
        cfg->param_values[cfg->n_params++] = sl_strdup(v->value);
    }
}

/* A backend name becomes part of a shared object's file name: keep it to [A-Za-z0-9_]. */
static bool backend_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_')) {
            return false;
        }
    }
    return true;
}

static void parse_root(pc_t *c, const sl_yaml_node_t *root, const char *dir_name,
                       sl_model_config_t *cfg) {
    static const char *const keys[] = {
        "name",   "backend",        "platform",         "max_batch_size",
        "inputs", "outputs",        "dynamic_batching", "instance_group",
        "warmup", "version_policy", "response_cache",   "parameters",
        NULL};
    if (!root || sl_yaml_is_null(root)) {
        perr(c, NULL, SL_EINVAL, "the file is empty (backend, inputs and outputs are required)");
        return;
    }
    if (!sl_yaml_want(&c->ye, root, SL_YAML_MAP, "the document")) return;
    sl_yaml_check_keys(&c->ye, root, keys, "");
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(root, "name")) && get_str(c, v, "name", MAX_NAME_BYTES, &cfg->name) &&
        strcmp(cfg->name, dir_name) != 0) {
        perr(c, v, SL_EINVAL, "name '%.64s' does not match the model directory '%.64s'", cfg->name,
             dir_name);
    }
    free(cfg->name);
    cfg->name = sl_strdup(dir_name);
    if (!(v = sl_yaml_map_get(root, "backend"))) {
        perr(c, root, SL_EINVAL, "backend is required (onnx, xgboost, or a backend's name)");
    } else if (get_str(c, v, "backend", 64, &cfg->backend) && !backend_name_ok(cfg->backend)) {
        perr(c, v, SL_EINVAL, "backend '%.64s' must be letters, digits and '_'", cfg->backend);
    }
    if ((v = sl_yaml_map_get(root, "platform"))) get_str(c, v, "platform", 64, &cfg->platform);
    if (!cfg->platform && cfg->backend) {
        cfg->platform = sl_strdup(strcmp(cfg->backend, "onnx") == 0 ? "onnx_onnxv1" : cfg->backend);
    }
    if ((v = sl_yaml_map_get(root, "max_batch_size"))) {
        get_u32(c, v, "max_batch_size", 0, MAX_BATCH, &cfg->max_batch_size);
    }
    bool batching = cfg->max_batch_size > 0;
    if (!(v = sl_yaml_map_get(root, "inputs")))
        perr(c, root, SL_EINVAL, "inputs is required (a list of {name, datatype, dims})");
    else
        parse_tensors(c, v, "inputs", batching, cfg->inputs, &cfg->n_inputs);
    if (!(v = sl_yaml_map_get(root, "outputs")))
        perr(c, root, SL_EINVAL, "outputs is required (a list of {name, datatype, dims})");
    else
        parse_tensors(c, v, "outputs", batching, cfg->outputs, &cfg->n_outputs);
    if ((v = sl_yaml_map_get(root, "dynamic_batching"))) parse_batching(c, v, cfg);
    if ((v = sl_yaml_map_get(root, "instance_group"))) parse_instances(c, v, cfg);
    if ((v = sl_yaml_map_get(root, "warmup"))) parse_warmup(c, v, cfg);
    if ((v = sl_yaml_map_get(root, "version_policy"))) parse_version_policy(c, v, cfg);
    if ((v = sl_yaml_map_get(root, "response_cache"))) parse_cache(c, v, cfg);
    if ((v = sl_yaml_map_get(root, "parameters"))) parse_params(c, v, cfg);
}

int sl_model_config_parse(const char *file, const char *dir_name, const void *data, size_t len,
                          sl_model_config_t *cfg, sl_buf_t *err) {
    memset(cfg, 0, sizeof *cfg);
    pc_t c = {.ye = {.file = file, .out = err}};
    sl_yaml_limits_t lim = {.max_bytes = SL_MODEL_CONFIG_MAX_BYTES,
                            .max_depth = 16,
                            .max_nodes = 20000,
                            .max_scalar_bytes = 4096};
    sl_yaml_doc_t *doc = NULL;
    int rc = sl_yaml_doc_parse(file, data, len, &lim, &doc, err);
    if (rc != 0) return rc;
    cfg->instance_count = 1;
    cfg->instance_threads = 1;
    cfg->version_policy = SL_VERSIONS_LATEST;
    cfg->latest_n = 1;
    cfg->response_cache_entries = 1024;
    parse_root(&c, doc->root, dir_name, cfg);
    sl_yaml_doc_free(doc);
    if (c.ye.status) {
        sl_model_config_free(cfg);
        return c.ye.status;
    }
    return 0;
}

void sl_model_config_free(sl_model_config_t *cfg) {
    free(cfg->name);
    free(cfg->backend);
    free(cfg->platform);
    for (uint32_t i = 0; i < cfg->n_inputs; i++)
        free((char *)cfg->inputs[i].name);
    for (uint32_t i = 0; i < cfg->n_outputs; i++)
        free((char *)cfg->outputs[i].name);
    for (uint32_t i = 0; i < cfg->n_warmup; i++) {
        free(cfg->warmup[i].name);
        for (size_t j = 0; j < SL_MODEL_MAX_TENSORS; j++)
            free(cfg->warmup[i].data_file[j]);
    }
    free(cfg->warmup);
    for (uint32_t i = 0; i < cfg->n_specific; i++)
        free(cfg->specific[i]);
    free(cfg->specific);
    for (uint32_t i = 0; i < cfg->n_params; i++) {
        free(cfg->param_keys[i]);
        free(cfg->param_values[i]);
    }
    memset(cfg, 0, sizeof *cfg);
}

/* ---- the config as JSON (Triton's field names) ---- */

static void json_str(sl_buf_t *out, const char *s) {
    sl_buf_putc(out, '"');
    sl_buf_json_escape(out, s, strlen(s));
    sl_buf_putc(out, '"');
}

static void json_tensors(sl_buf_t *out, const sluice_tensor_desc_t *t, uint32_t n) {
    sl_buf_putc(out, '[');
    for (uint32_t i = 0; i < n; i++) {
        sl_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        json_str(out, t[i].name);
        sl_buf_printf(out, ",\"data_type\":\"TYPE_%s\",\"dims\":[",
                      t[i].dtype == SLUICE_DT_BYTES ? "STRING" : sl_dtype_to_name(t[i].dtype));
        for (uint32_t j = 0; j < t[i].ndim; j++)
            sl_buf_printf(out, "%s%" PRId64, j ? "," : "", t[i].dims[j]);
        sl_buf_puts(out, "]}");
    }
    sl_buf_putc(out, ']');
}

static void json_policy(sl_buf_t *out, const sl_queue_policy_t *p) {
    sl_buf_printf(out,
                  "{\"timeout_action\":\"%s\",\"default_timeout_microseconds\":%" PRIu64
                  ",\"allow_timeout_override\":%s,\"max_queue_size\":%" PRIu32 "}",
                  p->timeout_action == SL_TIMEOUT_DELAY ? "DELAY" : "REJECT", p->default_timeout_us,
                  p->allow_timeout_override ? "true" : "false", p->max_queue_size);
}

void sl_model_config_to_json(const sl_model_config_t *cfg, sl_buf_t *out) {
    sl_buf_puts(out, "{\"name\":");
    json_str(out, cfg->name ? cfg->name : "");
    sl_buf_puts(out, ",\"platform\":");
    json_str(out, cfg->platform ? cfg->platform : "");
    sl_buf_puts(out, ",\"backend\":");
    json_str(out, cfg->backend ? cfg->backend : "");
    sl_buf_printf(out, ",\"max_batch_size\":%" PRIu32 ",\"input\":", cfg->max_batch_size);
    json_tensors(out, cfg->inputs, cfg->n_inputs);
    sl_buf_puts(out, ",\"output\":");
    json_tensors(out, cfg->outputs, cfg->n_outputs);
    const sl_dynamic_batching_t *db = &cfg->batching;
    if (db->enabled) {
        sl_buf_puts(out, ",\"dynamic_batching\":{\"preferred_batch_size\":[");
        for (uint32_t i = 0; i < db->n_preferred; i++)
            sl_buf_printf(out, "%s%" PRIu32, i ? "," : "", db->preferred[i]);
        sl_buf_printf(out,
                      "],\"max_queue_delay_microseconds\":%" PRIu64 ",\"priority_levels\":%" PRIu32
                      ",\"default_priority_level\":%" PRIu32 ",\"default_queue_policy\":",
                      db->max_queue_delay_us, db->priority_levels, db->default_priority_level);
        json_policy(out, &db->default_policy);
        sl_buf_puts(out, ",\"priority_queue_policy\":{");
        bool first = true;
        for (uint32_t l = 1; l <= SL_MODEL_MAX_PRIORITIES; l++) {
            if (!db->has_priority_policy[l]) continue;
            sl_buf_printf(out, "%s\"%" PRIu32 "\":", first ? "" : ",", l);
            json_policy(out, &db->priority_policy[l]);
            first = false;
        }
        sl_buf_puts(out, "}}");
    }
    sl_buf_printf(out, ",\"instance_group\":[{\"name\":");
    json_str(out, cfg->name ? cfg->name : "");
    sl_buf_printf(out, ",\"count\":%" PRIu32 ",\"kind\":\"%s\",\"threads\":%" PRIu32 "}]",
                  cfg->instance_count,
                  cfg->instance_kind == SLUICE_DEVICE_GPU ? "KIND_GPU" : "KIND_CPU",
                  cfg->instance_threads);
    sl_buf_puts(out, ",\"version_policy\":");
    switch (cfg->version_policy) {
    case SL_VERSIONS_ALL:
        sl_buf_puts(out, "{\"all\":{}}");
        break;
    case SL_VERSIONS_LATEST:
        sl_buf_printf(out, "{\"latest\":{\"num_versions\":%" PRIu32 "}}", cfg->latest_n);
        break;
    case SL_VERSIONS_SPECIFIC:
        sl_buf_puts(out, "{\"specific\":{\"versions\":[");
        for (uint32_t i = 0; i < cfg->n_specific; i++) {
            if (i) sl_buf_putc(out, ',');
            json_str(out, cfg->specific[i]);
        }
        sl_buf_puts(out, "]}}");
        break;
    }
    sl_buf_printf(out, ",\"response_cache\":{\"enable\":%s,\"max_entries\":%" PRIu32 "}",
                  cfg->response_cache ? "true" : "false", cfg->response_cache_entries);
    sl_buf_puts(out, ",\"parameters\":{");
    for (uint32_t i = 0; i < cfg->n_params; i++) {
        if (i) sl_buf_putc(out, ',');
        json_str(out, cfg->param_keys[i]);
        sl_buf_puts(out, ":{\"string_value\":");
        json_str(out, cfg->param_values[i]);
        sl_buf_putc(out, '}');
    }
    sl_buf_puts(out, "}}");
}
