/* Pipelines (see pipeline.h): the config parser with file:line errors, the field index the codec
 * looks request keys up in, and the accessors. The request decoder and response encoder are in
 * pipeline_codec.c. */
#include "gateway/names.h"
#include "gateway/pipeline_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parser context and helpers ------------------------------------------------------------ */

typedef struct pc {
    sl_yaml_errors_t *e;
    sl_pipeline_t *p;
    size_t fields_cap;
    uint32_t *field_lines; /* config line of each field, for "declared twice" messages */
} pc_t;

static void perr(pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_yaml_verror(c->e, at, SL_EINVAL, fmt, ap);
    va_end(ap);
}

/* Tensor names are the model's (ONNX allows ':' and '/'), so any printable bytes will do. */
static bool tensor_name_ok(const char *s, size_t n) {
    if (n == 0 || n > SL_PIPELINE_TENSOR_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) return false;
    }
    return true;
}

/* The scalar under key in map, or NULL (reported when required) when it is absent, a YAML null
 * or not a scalar. */
static const sl_yaml_node_t *get_scalar(pc_t *c, const sl_yaml_node_t *map, const char *key,
                                        const char *where, bool required) {
    const sl_yaml_node_t *v = sl_yaml_map_get(map, key);
    if (!v || sl_yaml_is_null(v)) {
        if (required) perr(c, map, "%s needs '%s'", where, key);
        return NULL;
    }
    char what[96];
    snprintf(what, sizeof what, "'%s' of %s", key, where);
    return sl_yaml_want(c->e, v, SL_YAML_SCALAR, what) ? v : NULL;
}

static bool dtype_allowed(sluice_dtype_t t) {
    return t == SLUICE_DT_FP32 || t == SLUICE_DT_FP64 || t == SLUICE_DT_INT32 ||
           t == SLUICE_DT_INT64 || t == SLUICE_DT_BOOL || t == SLUICE_DT_BYTES;
}

/* Declares request field `at` (a scalar naming it) of input tensor `tensor` (-1: extra). Names
 * are unique across the whole pipeline: a key of the request body means one thing. */
static void add_field(pc_t *c, const sl_yaml_node_t *at, int32_t tensor, uint32_t offset,
                      uint32_t length) {
    sl_pipeline_t *p = c->p;
    if (!sl_yaml_want(c->e, at, SL_YAML_SCALAR, "a field name")) return;
    if (!sl_gw_name_ok(at->value, at->len, SL_PIPELINE_NAME_MAX, false)) {
        perr(c, at,
             "field name '%.64s' is not valid (letters, digits, '_', '.', '-'; at most %d bytes)",
             at->value, SL_PIPELINE_NAME_MAX);
        return;
    }
    if (strcmp(at->value, "instances") == 0) {
        perr(c, at, "field name 'instances' is reserved (it marks a request of several rows)");
        return;
    }
    for (size_t i = 0; i < p->n_fields; i++) {
        if (strcmp(p->fields[i].name, at->value) == 0) {
            perr(c, at, "field '%s' is declared twice (first at line %" PRIu32 ")", at->value,
                 c->field_lines[i]);
            return;
        }
    }
    if (p->n_fields == SL_PIPELINE_MAX_FIELDS) {
        perr(c, at, "pipeline '%s' declares more than %d fields", p->name, SL_PIPELINE_MAX_FIELDS);
        return;
    }
    if (p->n_fields == c->fields_cap) {
        c->fields_cap = c->fields_cap ? c->fields_cap * 2 : 16;
        p->fields = sl_realloc(p->fields, c->fields_cap * sizeof *p->fields);
        c->field_lines = sl_realloc(c->field_lines, c->fields_cap * sizeof *c->field_lines);
    }
    c->field_lines[p->n_fields] = at->line;
    p->fields[p->n_fields++] = (sl_pipeline__field_t){
        .name = sl_strdup(at->value), .tensor = tensor, .offset = offset, .length = length};
}

/* ---- sections ------------------------------------------------------------------------------ */

static void parse_input(pc_t *c, const sl_yaml_node_t *m, size_t i, sl_pipeline__model_step_t *s) {
    char where[48];
    snprintf(where, sizeof where, "inputs[%zu]", i);
    if (!sl_yaml_want(c->e, m, SL_YAML_MAP, where)) return;
    static const char *const keys[] = {"tensor", "datatype", "fields", "field", "length", NULL};
    sl_yaml_check_keys(c->e, m, keys, where);
    sl_pipeline__tensor_t *t = &s->inputs[i];
    const sl_yaml_node_t *v;
    if ((v = get_scalar(c, m, "tensor", where, true))) {
        if (!tensor_name_ok(v->value, v->len)) {
            perr(c, v, "tensor name '%.64s' of %s is not valid (printable, at most %d bytes)",
                 v->value, where, SL_PIPELINE_TENSOR_MAX);
        } else {
            for (size_t k = 0; k < i; k++) {
                if (s->inputs[k].name && strcmp(s->inputs[k].name, v->value) == 0)
                    perr(c, v, "input tensor '%.64s' is listed twice", v->value);
            }
            t->name = sl_strdup(v->value);
        }
    }
    if ((v = get_scalar(c, m, "datatype", where, true))) {
        t->dtype = sl_dtype_from_name(v->value, v->len);
        if (!dtype_allowed(t->dtype)) {
            perr(c, v, "datatype '%.32s' of %s is not one of FP32, FP64, INT32, INT64, BOOL, BYTES",
                 v->value, where);
        }
    }
    const sl_yaml_node_t *fields = sl_yaml_map_get(m, "fields");
    const sl_yaml_node_t *field = sl_yaml_map_get(m, "field");
    const sl_yaml_node_t *length = sl_yaml_map_get(m, "length");
    if (fields && field) {
        perr(c, m,
             "%s has both 'fields' (one element per field) and 'field' (one array field); "
             "use one",
             where);
        return;
    }
    if (fields) {
        if (length) perr(c, length, "'length' of %s goes with 'field', not 'fields'", where);
        if (!sl_yaml_want(c->e, fields, SL_YAML_SEQ, "fields")) return;
        if (fields->n == 0 || fields->n > SL_PIPELINE_MAX_FIELDS) {
            perr(c, fields, "'fields' of %s lists %zu fields (1 to %d)", where, fields->n,
                 SL_PIPELINE_MAX_FIELDS);
            return;
        }
        for (size_t k = 0; k < fields->n; k++)
            add_field(c, fields->items[k], (int32_t)i, (uint32_t)k, 0);
        t->n = (uint32_t)fields->n;
        return;
    }
    if (!field) {
        perr(c, m, "%s needs 'fields' (a list of field names) or 'field' and 'length'", where);
        return;
    }
    int64_t n = 0;
    if (!length) {
        perr(c, m, "%s needs 'length' (the number of elements field '%.64s' holds)", where,
             field->kind == SL_YAML_SCALAR ? field->value : "?");
    } else if (sl_yaml_get_int64(length, 1, SL_PIPELINE_MAX_LENGTH, &n) != 0) {
        perr(c, length, "'length' of %s must be an integer from 1 to %d", where,
             SL_PIPELINE_MAX_LENGTH);
    }
    add_field(c, field, (int32_t)i, 0, (uint32_t)n);
    t->n = (uint32_t)n;
}

static void parse_inputs(pc_t *c, const sl_yaml_node_t *m, sl_pipeline__model_step_t *s) {
    const sl_yaml_node_t *seq = sl_yaml_map_get(m, "inputs");
    if (!seq || sl_yaml_is_null(seq)) {
        perr(c, seq ? seq : m, "pipeline '%s' needs 'inputs' (a list of input tensors)",
             c->p->name);
        return;
    }
    if (!sl_yaml_want(c->e, seq, SL_YAML_SEQ, "inputs")) return;
    if (seq->n == 0 || seq->n > SL_PIPELINE_MAX_TENSORS) {
        perr(c, seq, "pipeline '%s' has %zu inputs (1 to %d)", c->p->name, seq->n,
             SL_PIPELINE_MAX_TENSORS);
        return;
    }
    s->inputs = sl_calloc(seq->n, sizeof *s->inputs);
    s->n_inputs = seq->n;
    for (size_t i = 0; i < seq->n; i++)
        parse_input(c, seq->items[i], i, s);
}

static void parse_extra(pc_t *c, const sl_yaml_node_t *seq) {
    if (!seq || sl_yaml_is_null(seq)) return;
    if (!sl_yaml_want(c->e, seq, SL_YAML_SEQ, "extra_fields")) return;
    if (seq->n > SL_PIPELINE_MAX_FIELDS) {
        perr(c, seq, "extra_fields lists %zu fields (at most %d)", seq->n, SL_PIPELINE_MAX_FIELDS);
        return;
    }
    for (size_t i = 0; i < seq->n; i++)
        add_field(c, seq->items[i], -1, 0, 0);
}

static void parse_output(pc_t *c, const sl_yaml_node_t *m, size_t i, sl_pipeline__model_step_t *s) {
    char where[48];
    snprintf(where, sizeof where, "outputs[%zu]", i);
    if (!sl_yaml_want(c->e, m, SL_YAML_MAP, where)) return;
    static const char *const keys[] = {"field", "tensor", "index", NULL};
    sl_yaml_check_keys(c->e, m, keys, where);
    sl_pipeline__output_t *o = &s->outputs[s->n_outputs];
    o->index = -1;
    bool ok = true;
    const sl_yaml_node_t *f = get_scalar(c, m, "field", where, true);
    if (f && !sl_gw_name_ok(f->value, f->len, SL_PIPELINE_NAME_MAX, false)) {
        perr(c, f,
             "output field name '%.64s' is not valid (letters, digits, '_', '.', '-'; at most %d "
             "bytes)",
             f->value, SL_PIPELINE_NAME_MAX);
        ok = false;
    }
    for (size_t k = 0; f && ok && k < s->n_outputs; k++) {
        if (strcmp(s->outputs[k].field, f->value) == 0) {
            perr(c, f, "output field '%s' is listed twice", f->value);
            ok = false;
        }
    }
    const sl_yaml_node_t *t = get_scalar(c, m, "tensor", where, true);
    if (t && !tensor_name_ok(t->value, t->len)) {
        perr(c, t, "tensor name '%.64s' of %s is not valid (printable, at most %d bytes)", t->value,
             where, SL_PIPELINE_TENSOR_MAX);
        ok = false;
    }
    const sl_yaml_node_t *idx = sl_yaml_map_get(m, "index");
    if (idx && !sl_yaml_is_null(idx) && sl_yaml_get_int64(idx, 0, INT32_MAX, &o->index) != 0) {
        perr(c, idx, "'index' of %s must be an integer from 0 to %d", where, INT32_MAX);
        ok = false;
    }
    if (!f || !t || !ok) return;
    size_t k = 0;
    while (k < s->n_out_tensors && strcmp(s->out_tensors[k], t->value) != 0)
        k++;
    if (k == s->n_out_tensors) s->out_tensors[s->n_out_tensors++] = sl_strdup(t->value);
    o->tensor = (uint32_t)k;
    o->field = sl_strdup(f->value);
    s->n_outputs++;
}

static void parse_outputs(pc_t *c, const sl_yaml_node_t *m, sl_pipeline__model_step_t *s) {
    const sl_yaml_node_t *seq = sl_yaml_map_get(m, "outputs");
    if (!seq || sl_yaml_is_null(seq)) {
        perr(c, seq ? seq : m, "pipeline '%s' needs 'outputs' (a list of {field, tensor})",
             c->p->name);
        return;
    }
    if (!sl_yaml_want(c->e, seq, SL_YAML_SEQ, "outputs")) return;
    if (seq->n == 0 || seq->n > SL_PIPELINE_MAX_TENSORS) {
        perr(c, seq, "pipeline '%s' has %zu outputs (1 to %d)", c->p->name, seq->n,
             SL_PIPELINE_MAX_TENSORS);
        return;
    }
    /* At most one distinct tensor per output, so both arrays fit seq->n. */
    s->outputs = sl_calloc(seq->n, sizeof *s->outputs);
    s->out_tensors = sl_calloc(seq->n, sizeof *s->out_tensors);
    for (size_t i = 0; i < seq->n; i++)
        parse_output(c, seq->items[i], i, s);
}

static void parse_model_step(pc_t *c, const sl_yaml_node_t *m, sl_pipeline__model_step_t *s) {
    char where[SL_PIPELINE_NAME_MAX + 16];
    snprintf(where, sizeof where, "pipeline '%s'", c->p->name);
    const sl_yaml_node_t *v = get_scalar(c, m, "model", where, true);
    if (v) {
        if (!sl_gw_name_ok(v->value, v->len, SL_PIPELINE_NAME_MAX, true)) {
            perr(c, v,
                 "'%.64s' is not a model name (letters, digits, '_', '.', '-', not starting with "
                 "'.'; at most %d bytes)",
                 v->value, SL_PIPELINE_NAME_MAX);
        } else {
            s->model = sl_strdup(v->value);
        }
    }
    if ((v = get_scalar(c, m, "version", where, false)) && v->len > 0) {
        if (!sl_gw_version_ok(v->value, v->len, SL_PIPELINE_VERSION_MAX)) {
            perr(c, v,
                 "version '%.64s' of %s is not a version name (letters, digits, '.', '+', '-'; at "
                 "most %d bytes)",
                 v->value, where, SL_PIPELINE_VERSION_MAX);
        } else {
            s->version = sl_strdup(v->value);
        }
    }
    parse_inputs(c, m, s);
    parse_extra(c, sl_yaml_map_get(m, "extra_fields"));
    parse_outputs(c, m, s);
}

/* ---- the field index ----------------------------------------------------------------------- */

static int cmp_field_ptr(const void *a, const void *b) {
    return strcmp((*(const sl_pipeline__field_t *const *)a)->name,
                  (*(const sl_pipeline__field_t *const *)b)->name);
}

static void build_index(sl_pipeline_t *p) {
    const sl_pipeline__field_t **sorted = sl_malloc((p->n_fields + 1) * sizeof *sorted);
    for (size_t i = 0; i < p->n_fields; i++)
        sorted[i] = &p->fields[i];
    qsort(sorted, p->n_fields, sizeof *sorted, cmp_field_ptr);
    p->by_name = sl_malloc((p->n_fields + 1) * sizeof *p->by_name);
    for (size_t i = 0; i < p->n_fields; i++)
        p->by_name[i] = (uint32_t)(sorted[i] - p->fields);
    free(sorted);
}

int32_t sl_pipeline__find_field(const sl_pipeline_t *p, const char *key, size_t n) {
    size_t lo = 0, hi = p->n_fields;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = p->fields[p->by_name[mid]].name;
        size_t len = strlen(name);
        int cmp = memcmp(key, name, SL_MIN(n, len));
        if (cmp == 0) cmp = n < len ? -1 : n > len ? 1 : 0;
        if (cmp == 0) return (int32_t)p->by_name[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* ---- entry points -------------------------------------------------------------------------- */

int sl_pipeline_parse(sl_yaml_errors_t *e, const char *name, const sl_yaml_node_t *node,
                      sl_pipeline_t **out) {
    *out = NULL;
    int before = e->n;
    sl_pipeline_t *p = sl_calloc(1, sizeof *p);
    p->name = sl_strdup(name ? name : "");
    p->line = node ? node->line : 0;
    p->steps = sl_calloc(1, sizeof *p->steps);
    p->n_steps = 1;
    p->steps[0].kind = SL_PIPELINE_STEP_MODEL;
    pc_t c = {.e = e, .p = p};
    if (!sl_gw_name_ok(p->name, strlen(p->name), SL_PIPELINE_NAME_MAX, true)) {
        perr(&c, node,
             "'%.64s' is not a pipeline name (letters, digits, '_', '.', '-', not starting with "
             "'.'; at most %d bytes)",
             p->name, SL_PIPELINE_NAME_MAX);
    }
    char what[SL_PIPELINE_NAME_MAX + 80];
    snprintf(what, sizeof what, "pipeline '%.64s'", p->name);
    if (!node) {
        perr(&c, NULL, "%s has no definition", what);
    } else if (sl_yaml_want(c.e, node, SL_YAML_MAP, what)) {
        /* fallback, fault and upstream are the policy parser's: it reads them from the same
         * mapping. */
        static const char *const keys[] = {"model",   "version",      "inputs",
                                           "outputs", "extra_fields", "fallback",
                                           "fault",   "upstream",     NULL};
        sl_yaml_check_keys(e, node, keys, what);
        parse_model_step(&c, node, &p->steps[0].model);
    }
    free(c.field_lines);
    if (e->n != before) {
        sl_pipeline_free(p);
        return SL_EINVAL;
    }
    build_index(p);
    *out = p;
    return 0;
}

void sl_pipeline_free(sl_pipeline_t *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++) {
        sl_pipeline__model_step_t *s = &p->steps[i].model;
        free(s->model);
        free(s->version);
        for (size_t k = 0; k < s->n_inputs; k++)
            free(s->inputs[k].name);
        free(s->inputs);
        for (size_t k = 0; k < s->n_out_tensors; k++)
            free(s->out_tensors[k]);
        free(s->out_tensors);
        for (size_t k = 0; k < s->n_outputs; k++)
            free(s->outputs[k].field);
        free(s->outputs);
    }
    free(p->steps);
    for (size_t i = 0; i < p->n_fields; i++)
        free(p->fields[i].name);
    free(p->fields);
    free(p->by_name);
    free(p->name);
    free(p);
}

const char *sl_pipeline_name(const sl_pipeline_t *p) {
    return p->name;
}

const char *sl_pipeline_model(const sl_pipeline_t *p) {
    return sl_pipeline__model(p)->model;
}

const char *sl_pipeline_version(const sl_pipeline_t *p) {
    return sl_pipeline__model(p)->version;
}

uint32_t sl_pipeline_line(const sl_pipeline_t *p) {
    return p->line;
}

size_t sl_pipeline_step_count(const sl_pipeline_t *p) {
    return p->n_steps;
}

sl_pipeline_step_kind_t sl_pipeline_step_kind(const sl_pipeline_t *p, size_t i) {
    SL_ASSERT(i < p->n_steps);
    return p->steps[i].kind;
}

size_t sl_pipeline_output_count(const sl_pipeline_t *p) {
    return sl_pipeline__model(p)->n_outputs;
}

const char *sl_pipeline_output_field(const sl_pipeline_t *p, size_t i) {
    SL_ASSERT(i < sl_pipeline__model(p)->n_outputs);
    return sl_pipeline__model(p)->outputs[i].field;
}

bool sl_pipeline_has_output_field(const sl_pipeline_t *p, const char *field) {
    const sl_pipeline__model_step_t *s = sl_pipeline__model(p);
    for (size_t i = 0; i < s->n_outputs; i++)
        if (strcmp(s->outputs[i].field, field) == 0) return true;
    return false;
}
