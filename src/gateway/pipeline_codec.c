/* Pipelines' codec (see pipeline.h): a /v1/predict JSON body of named fields into the model's
 * input tensors (sl_infer_request_t), and the model's response back into named fields. Runs on
 * the gateway's I/O threads; the fuzzer runs it on arbitrary bytes. The config parser is
 * pipeline.c. */
#include "gateway/pipeline_internal.h"

#include "core/json.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the pipeline codec writes tensors in host order, which must be little-endian"
#endif

/* Integers above this are not exact in a double, which is all cJSON keeps of a number. */
#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

/* ---- messages ------------------------------------------------------------------------------ */

/* A client's key, fit for a message: at most 64 bytes, cut on a UTF-8 boundary, control
 * characters replaced by '?'. */
static const char *safe_key(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[n] = '\0';
    return buf;
}

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

/* The plural noun for an array field's elements. */
static const char *elem_noun(sluice_dtype_t t) {
    switch (t) {
    case SLUICE_DT_FP32:
    case SLUICE_DT_FP64:
        return "numbers";
    case SLUICE_DT_INT32:
    case SLUICE_DT_INT64:
        return "integers";
    case SLUICE_DT_BOOL:
        return "booleans (true/false)";
    default:
        return "strings";
    }
}

/* Writes the shortest decimal that reads back as the same float (fp32) or double: a binary
 * search on %.Ng, which needs at most 9 or 17 digits. Returns its length. */
static int shortest(char *s, size_t cap, double v, bool fp32) {
    int lo = 1, hi = fp32 ? 9 : 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(s, cap, "%.*g", mid, v);
        bool same = fp32 ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v;
        if (same)
            hi = mid;
        else
            lo = mid + 1;
    }
    return snprintf(s, cap, "%.*g", lo, v);
}

/* A client's number, for a message. */
typedef struct num {
    char s[40];
} num_t;

static num_t num(double v) {
    num_t n;
    shortest(n.s, sizeof n.s, v, false);
    return n;
}

/* ---- decoding ------------------------------------------------------------------------------ */

typedef struct dec {
    const sl_pipeline_t *p;
    const sl_pipeline__model_step_t *s;
    const cJSON **slots;                      /* per field: this row's value; NULL: absent */
    uint64_t bytes[SL_PIPELINE_MAX_TENSORS];  /* per tensor: data bytes (BYTES: summed) */
    uint8_t *data[SL_PIPELINE_MAX_TENSORS];   /* per tensor: its data (second pass) */
    uint64_t cursor[SL_PIPELINE_MAX_TENSORS]; /* BYTES: write offset (second pass) */
    char row[40];                             /* "instances[3]: " or "" */
    sl_infer_error_t *err;
} dec_t;

/* Reports a problem with field f (element k of an array field when k >= 0). */
static sl_infer_code_t field_fail(dec_t *d, const sl_pipeline__field_t *f, long k, const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));

static sl_infer_code_t field_fail(dec_t *d, const sl_pipeline__field_t *f, long k, const char *fmt,
                                  ...) {
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (k >= 0) {
        return sl_infer_error_set(d->err, SL_INFER_INVALID, "%sfield '%s': element %ld: %s", d->row,
                                  f->name, k, msg);
    }
    return sl_infer_error_set(d->err, SL_INFER_INVALID, "%sfield '%s': %s", d->row, f->name, msg);
}

/* Checks v as one element of datatype t for field f and, when dst is not NULL, stores it there
 * (BYTES: its 4-byte length and its bytes). *size gets the bytes it takes. */
static sl_infer_code_t element(dec_t *d, const sl_pipeline__field_t *f, long k, sluice_dtype_t t,
                               const cJSON *v, uint8_t *dst, size_t *size) {
    switch (t) {
    case SLUICE_DT_BOOL:
        if (!cJSON_IsBool(v))
            return field_fail(d, f, k, "expected true or false, got %s", json_kind(v));
        if (dst) *dst = cJSON_IsTrue(v) ? 1 : 0;
        *size = 1;
        return SL_INFER_OK;
    case SLUICE_DT_BYTES: {
        if (!cJSON_IsString(v) || !v->valuestring)
            return field_fail(d, f, k, "expected a string, got %s", json_kind(v));
        size_t n = strlen(v->valuestring);
        if (n > UINT32_MAX) return field_fail(d, f, k, "the string is too long");
        if (dst) {
            uint32_t n32 = (uint32_t)n;
            memcpy(dst, &n32, 4);
            memcpy(dst + 4, v->valuestring, n);
        }
        *size = 4 + n;
        return SL_INFER_OK;
    }
    case SLUICE_DT_FP32:
    case SLUICE_DT_FP64: {
        if (!cJSON_IsNumber(v))
            return field_fail(d, f, k, "expected a number, got %s", json_kind(v));
        double x = v->valuedouble;
        if (!isfinite(x)) return field_fail(d, f, k, "expected a finite number");
        if (t == SLUICE_DT_FP32) {
            if (fabs(x) > FLT_MAX)
                return field_fail(d, f, k, "%s is out of range for FP32", num(x).s);
            float y = (float)x;
            if (dst) memcpy(dst, &y, 4);
            *size = 4;
        } else {
            if (dst) memcpy(dst, &x, 8);
            *size = 8;
        }
        return SL_INFER_OK;
    }
    default: { /* INT32, INT64: the parser allows no other datatype */
        if (!cJSON_IsNumber(v))
            return field_fail(d, f, k, "expected an integer, got %s", json_kind(v));
        double x = v->valuedouble;
        if (!isfinite(x) || x != floor(x))
            return field_fail(d, f, k, "expected an integer, got %s", num(x).s);
        if (t == SLUICE_DT_INT32) {
            if (x < INT32_MIN || x > INT32_MAX) {
                return field_fail(d, f, k, "%s is out of range for INT32 (%d to %d)", num(x).s,
                                  INT32_MIN, INT32_MAX);
            }
            int32_t y = (int32_t)x;
            if (dst) memcpy(dst, &y, 4);
            *size = 4;
        } else {
            if (fabs(x) >= EXACT_LIMIT) {
                return field_fail(d, f, k,
                                  "%s cannot be exact as a JSON number (magnitude must be "
                                  "below 2^53)",
                                  num(x).s);
            }
            int64_t y = (int64_t)x;
            if (dst) memcpy(dst, &y, 8);
            *size = 8;
        }
        return SL_INFER_OK;
    }
    }
}

/* Checks field f's value v of row r (and stores it in the second pass, when d->data is set). */
static sl_infer_code_t field_value(dec_t *d, const sl_pipeline__field_t *f, uint32_t r,
                                   const cJSON *v, bool write) {
    const sl_pipeline__tensor_t *t = &d->s->inputs[f->tensor];
    size_t esize = sluice_dtype_size(t->dtype), size = 0;
    uint8_t *dst = NULL;
    if (write && t->dtype != SLUICE_DT_BYTES)
        dst = d->data[f->tensor] + ((uint64_t)r * t->n + f->offset) * esize;
    if (f->length == 0) {
        if (write && t->dtype == SLUICE_DT_BYTES) dst = d->data[f->tensor] + d->cursor[f->tensor];
        sl_infer_code_t rc = element(d, f, -1, t->dtype, v, dst, &size);
        if (rc != SL_INFER_OK) return rc;
        if (t->dtype == SLUICE_DT_BYTES) (write ? d->cursor : d->bytes)[f->tensor] += size;
        return SL_INFER_OK;
    }
    if (!cJSON_IsArray(v)) {
        return field_fail(d, f, -1, "expected an array of %" PRIu32 " %s, got %s", f->length,
                          elem_noun(t->dtype), json_kind(v));
    }
    int count = cJSON_GetArraySize(v);
    if (count < 0 || (uint32_t)count != f->length) {
        return field_fail(d, f, -1, "expected an array of %" PRIu32 " %s, got %d", f->length,
                          elem_noun(t->dtype), count);
    }
    long k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (write && t->dtype == SLUICE_DT_BYTES) dst = d->data[f->tensor] + d->cursor[f->tensor];
        sl_infer_code_t rc = element(d, f, k, t->dtype, e, dst, &size);
        if (rc != SL_INFER_OK) return rc;
        if (t->dtype == SLUICE_DT_BYTES)
            (write ? d->cursor : d->bytes)[f->tensor] += size;
        else if (dst)
            dst += size;
        k++;
    }
    return SL_INFER_OK;
}

/* "unknown field 'amout' (did you mean 'amount'?)" */
static sl_infer_code_t unknown_field(dec_t *d, const char *key) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < d->p->n_fields; i++) {
        size_t dist = sl_str_edit_distance(key, d->p->fields[i].name);
        if (dist < best_d) {
            best_d = dist;
            best = d->p->fields[i].name;
        }
    }
    char k[72];
    safe_key(key, k, sizeof k);
    /* One edit away, or two from a name of six bytes or more: a likely typo. */
    if (best && best_d <= (strlen(best) >= 6 ? 2u : 1u)) {
        return sl_infer_error_set(d->err, SL_INFER_INVALID,
                                  "%sunknown field '%s' (did you mean '%s'?)", d->row, k, best);
    }
    return sl_infer_error_set(d->err, SL_INFER_INVALID, "%sunknown field '%s'", d->row, k);
}

/* Points d->slots at the fields of object obj. top: obj is the body of an instances request,
 * which may hold "instances" and extra fields only. */
static sl_infer_code_t fill_slots(dec_t *d, const cJSON *obj, bool top) {
    memset(d->slots, 0, d->p->n_fields * sizeof *d->slots);
    bool seen_instances = false;
    const cJSON *c;
    cJSON_ArrayForEach(c, obj) {
        const char *key = c->string ? c->string : "";
        char k[72];
        if (top && strcmp(key, "instances") == 0) {
            if (seen_instances)
                return sl_infer_error_set(d->err, SL_INFER_INVALID,
                                          "field 'instances' appears twice");
            seen_instances = true;
            continue;
        }
        int32_t i = sl_pipeline__find_field(d->p, key, strlen(key));
        if (i < 0) return unknown_field(d, key);
        const sl_pipeline__field_t *f = &d->p->fields[i];
        if (top && f->tensor >= 0) {
            return sl_infer_error_set(d->err, SL_INFER_INVALID,
                                      "field '%s' belongs in each row of 'instances', not next to "
                                      "it",
                                      f->name);
        }
        if (d->slots[i]) {
            return sl_infer_error_set(d->err, SL_INFER_INVALID, "%sfield '%s' appears twice",
                                      d->row, safe_key(key, k, sizeof k));
        }
        d->slots[i] = c;
    }
    return SL_INFER_OK;
}

/* One row: its keys, then every declared input field's value in declaration order (which is
 * tensor by tensor, element by element, so BYTES data is appended in row-major order). */
static sl_infer_code_t do_row(dec_t *d, const cJSON *row, uint32_t r, bool write) {
    sl_infer_code_t rc = fill_slots(d, row, false);
    if (rc != SL_INFER_OK) return rc;
    for (size_t i = 0; i < d->p->n_fields; i++) {
        const sl_pipeline__field_t *f = &d->p->fields[i];
        if (f->tensor < 0) continue;
        if (!d->slots[i]) {
            return sl_infer_error_set(d->err, SL_INFER_INVALID, "%smissing field '%s'", d->row,
                                      f->name);
        }
        rc = field_value(d, f, r, d->slots[i], write);
        if (rc != SL_INFER_OK) return rc;
    }
    return SL_INFER_OK;
}

static void set_row(dec_t *d, bool instances, uint32_t r) {
    if (instances)
        snprintf(d->row, sizeof d->row, "instances[%" PRIu32 "]: ", r);
    else
        d->row[0] = '\0';
}

/* Visits every row: the first pass checks and sizes, the second writes. */
static sl_infer_code_t pass(dec_t *d, const cJSON *root, const cJSON *rows, bool write) {
    if (!rows) {
        set_row(d, false, 0);
        return do_row(d, root, 0, write);
    }
    uint32_t r = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        set_row(d, true, r);
        if (!cJSON_IsObject(row)) {
            return sl_infer_error_set(d->err, SL_INFER_INVALID,
                                      "%sexpected an object of fields, got %s", d->row,
                                      json_kind(row));
        }
        sl_infer_code_t rc = do_row(d, row, r, write);
        if (rc != SL_INFER_OK) return rc;
        r++;
    }
    return SL_INFER_OK;
}

static uint64_t hash_inputs(const sl_infer_request_t *req) {
    uint64_t h = SL_FNV64_INIT;
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        h = sl_fnv64(h, in->name, strlen(in->name) + 1); /* with its NUL: a separator */
        uint32_t dt = (uint32_t)in->dtype;
        h = sl_fnv64(h, &dt, sizeof dt);
        h = sl_fnv64(h, &in->ndim, sizeof in->ndim);
        h = sl_fnv64(h, in->dims, in->ndim * sizeof in->dims[0]);
        h = sl_fnv64(h, &in->byte_size, sizeof in->byte_size);
        h = sl_fnv64(h, in->data, (size_t)in->byte_size);
    }
    return h;
}

sl_infer_code_t sl_pipeline_decode(const sl_pipeline_t *p, const uint8_t *body, size_t len,
                                   uint32_t max_rows, sl_infer_request_t *req,
                                   sl_pipeline_input_t *info, sl_infer_error_t *err) {
    SL_ASSERT(req->n_inputs == 0 && req->n_outputs == 0);
    *info = (sl_pipeline_input_t){0};
    if (max_rows == 0) max_rows = SL_PIPELINE_DEFAULT_ROWS;
    if (max_rows > SL_PIPELINE_MAX_ROWS) max_rows = SL_PIPELINE_MAX_ROWS;

    cJSON *root = NULL;
    char jerr[160];
    sl_json_limits_t lim = {.max_bytes = len, .max_depth = SL_PIPELINE_MAX_DEPTH};
    if (sl_json_parse_ex((const char *)body, len, &lim, &root, jerr, sizeof jerr) != 0)
        return sl_infer_error_set(err, SL_INFER_INVALID, "%s", jerr);

    const sl_pipeline__model_step_t *s = sl_pipeline__model(p);
    dec_t d = {.p = p, .s = s, .err = err};
    d.slots = sl_infer_request_alloc(req, (p->n_fields + 1) * sizeof *d.slots);
    const cJSON *rows = NULL;
    uint32_t n_rows = 1;
    sl_infer_code_t rc = SL_INFER_OK;
    if (!cJSON_IsObject(root)) {
        rc = sl_infer_error_set(err, SL_INFER_INVALID,
                                "the request must be a JSON object of fields, or "
                                "{\"instances\": [objects of fields]}");
        goto fail;
    }
    rows = cJSON_GetObjectItemCaseSensitive(root, "instances");
    if (rows) {
        if (!cJSON_IsArray(rows)) {
            rc = sl_infer_error_set(err, SL_INFER_INVALID,
                                    "field 'instances' must be an array of objects, got %s",
                                    json_kind(rows));
            goto fail;
        }
        int n = cJSON_GetArraySize(rows);
        if (n <= 0) {
            rc = sl_infer_error_set(err, SL_INFER_INVALID, "field 'instances' must not be empty");
            goto fail;
        }
        if ((uint32_t)n > max_rows) {
            rc = sl_infer_error_set(err, SL_INFER_INVALID,
                                    "field 'instances' has %d rows (at most %" PRIu32 ")", n,
                                    max_rows);
            goto fail;
        }
        n_rows = (uint32_t)n;
        if ((rc = fill_slots(&d, root, true)) != SL_INFER_OK) goto fail;
    }
    if ((rc = pass(&d, root, rows, false)) != SL_INFER_OK) goto fail;

    /* Every row held every field, so the sizes are bounded by the body. */
    for (size_t t = 0; t < s->n_inputs; t++) {
        const sl_pipeline__tensor_t *tn = &s->inputs[t];
        if (tn->dtype != SLUICE_DT_BYTES)
            d.bytes[t] = (uint64_t)n_rows * tn->n * sluice_dtype_size(tn->dtype);
        d.data[t] = sl_infer_request_alloc(req, (size_t)d.bytes[t]);
    }
    rc = pass(&d, root, rows, true);
    SL_ASSERT(rc == SL_INFER_OK); /* the first pass checked everything */

    req->model_name = sl_infer_request_strndup(req, s->model, strlen(s->model));
    if (s->version)
        req->model_version = sl_infer_request_strndup(req, s->version, strlen(s->version));
    for (size_t t = 0; t < s->n_inputs; t++) {
        const sl_pipeline__tensor_t *tn = &s->inputs[t];
        sl_infer_input_t *in = sl_infer_request_add_input(req);
        in->name = sl_infer_request_strndup(req, tn->name, strlen(tn->name));
        in->dtype = tn->dtype;
        in->ndim = 2;
        in->dims[0] = n_rows;
        in->dims[1] = tn->n;
        in->data = d.data[t];
        in->byte_size = d.bytes[t];
        SL_ASSERT(tn->dtype != SLUICE_DT_BYTES || d.cursor[t] == d.bytes[t]);
    }
    for (size_t t = 0; t < s->n_out_tensors; t++) {
        sl_infer_output_req_t *o = sl_infer_request_add_output(req);
        o->name = sl_infer_request_strndup(req, s->out_tensors[t], strlen(s->out_tensors[t]));
    }
    info->rows = n_rows;
    info->instances = rows != NULL;
    info->hash = hash_inputs(req);
    info->root_ = root;
    info->first_row_ = rows ? rows->child : root;
    return SL_INFER_OK;
fail:
    cJSON_Delete(root);
    return rc;
}

int sl_pipeline_input_field(sl_pipeline_input_t *info, const char *name, sl_str_t *out) {
    const cJSON *v = NULL;
    if (info->root_) v = cJSON_GetObjectItemCaseSensitive(info->root_, name);
    if (!v && info->instances && info->first_row_)
        v = cJSON_GetObjectItemCaseSensitive(info->first_row_, name);
    if (!v) return SL_ENOENT;
    if (cJSON_IsString(v) && v->valuestring) {
        *out = (sl_str_t){v->valuestring, strlen(v->valuestring)};
        return 0;
    }
    if (!cJSON_IsNumber(v)) return SL_EINVAL;
    double x = v->valuedouble;
    size_t n;
    if (x == floor(x) && fabs(x) < EXACT_LIMIT)
        n = (size_t)(sl_fmt_i64(info->num_, (int64_t)x) - info->num_);
    else
        n = (size_t)shortest(info->num_, sizeof info->num_, x, false);
    *out = (sl_str_t){info->num_, n};
    return 0;
}

void sl_pipeline_input_free(sl_pipeline_input_t *info) {
    cJSON_Delete(info->root_);
    *info = (sl_pipeline_input_t){0};
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* An output tensor of the response, checked against the rows of the request. */
typedef struct out_tensor {
    const sl_infer_output_t *o;
    uint64_t row_n; /* elements per row */
    size_t esize;
    uint64_t *offs; /* BYTES: element i at offs[i] (its length prefix); NULL otherwise */
} out_tensor_t;

#define upstream(err, ...) sl_infer_error_set((err), SL_INFER_INTERNAL, __VA_ARGS__)

static sl_infer_code_t check_output(const sl_pipeline_t *p, const char *tensor, uint32_t rows,
                                    const sl_infer_response_t *resp, out_tensor_t *ot,
                                    sl_infer_error_t *err) {
    const char *model = sl_pipeline__model(p)->model;
    for (size_t i = 0; i < resp->n_outputs && !ot->o; i++) {
        if (resp->outputs[i].name && strcmp(resp->outputs[i].name, tensor) == 0)
            ot->o = &resp->outputs[i];
    }
    const sl_infer_output_t *o = ot->o;
    if (!o) {
        return upstream(err, "pipeline '%s': model '%s' returned no output '%.64s'", p->name, model,
                        tensor);
    }
    char shape[96];
    int64_t numel = o->ndim <= SLUICE_MAX_DIMS ? sl_dims_numel(o->dims, o->ndim) : -1;
    if (o->ndim < 1 || o->ndim > SLUICE_MAX_DIMS || numel < 0 || o->dims[0] != (int64_t)rows) {
        return upstream(
            err, "pipeline '%s': output '%.64s' of model '%s' has shape %s for %" PRIu32 " rows",
            p->name, tensor, model,
            sl_dims_str(o->dims, SL_MIN(o->ndim, (uint32_t)SLUICE_MAX_DIMS), shape, sizeof shape),
            rows);
    }
    ot->row_n = (uint64_t)numel / rows;
    ot->esize = sluice_dtype_size(o->dtype);
    if (o->byte_size > 0 && !o->data) {
        return upstream(err, "pipeline '%s': output '%.64s' has no data", p->name, tensor);
    }
    if (o->dtype != SLUICE_DT_BYTES) {
        if (ot->esize == 0) {
            return upstream(err, "pipeline '%s': output '%.64s' has datatype %s", p->name, tensor,
                            sl_dtype_to_name(o->dtype));
        }
        if ((uint64_t)numel > UINT64_MAX / ot->esize || o->byte_size != (uint64_t)numel * ot->esize)
            return upstream(err,
                            "pipeline '%s': output '%.64s' has %" PRIu64 " bytes for %" PRId64
                            " elements of %s",
                            p->name, tensor, o->byte_size, numel, sl_dtype_to_name(o->dtype));
        return SL_INFER_OK;
    }
    /* BYTES: each element is a 4-byte length and its bytes; find where each starts. The count
     * is checked against the data first, so the offsets array is bounded by it. */
    if ((uint64_t)numel > o->byte_size / 4) {
        return upstream(err,
                        "pipeline '%s': BYTES output '%.64s' is too short for %" PRId64 " elements",
                        p->name, tensor, numel);
    }
    ot->offs = sl_malloc(((size_t)numel + 1) * sizeof *ot->offs);
    const uint8_t *data = o->data;
    uint64_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        uint32_t n;
        if (o->byte_size - off < 4) goto bad;
        memcpy(&n, data + off, 4);
        if (n > o->byte_size - off - 4) goto bad;
        ot->offs[i] = off;
        off += 4 + (uint64_t)n;
    }
    if (off == o->byte_size) return SL_INFER_OK;
bad:
    return upstream(err, "pipeline '%s': BYTES output '%.64s' is malformed", p->name, tensor);
}

/* Non-finite values have no JSON spelling: null. */
static void put_float(sl_buf_t *out, double v, bool fp32) {
    if (!isfinite(v)) {
        sl_buf_puts(out, "null");
        return;
    }
    char s[40];
    int n = shortest(s, sizeof s, v, fp32);
    sl_buf_append(out, s, (size_t)n);
}

static void put_element(sl_buf_t *out, const out_tensor_t *ot, uint64_t i) {
    const sl_infer_output_t *o = ot->o;
    const uint8_t *p = (const uint8_t *)o->data + (o->dtype == SLUICE_DT_BYTES ? 0 : i * ot->esize);
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
    } v;
    if (o->dtype != SLUICE_DT_BYTES) memcpy(&v, p, ot->esize);
    switch (o->dtype) {
    case SLUICE_DT_BOOL:
        sl_buf_puts(out, v.u8 ? "true" : "false");
        break;
    case SLUICE_DT_UINT8:
        sl_buf_put_u64(out, v.u8);
        break;
    case SLUICE_DT_INT8:
        sl_buf_put_i64(out, v.i8);
        break;
    case SLUICE_DT_UINT16:
        sl_buf_put_u64(out, v.u16);
        break;
    case SLUICE_DT_INT16:
        sl_buf_put_i64(out, v.i16);
        break;
    case SLUICE_DT_UINT32:
        sl_buf_put_u64(out, v.u32);
        break;
    case SLUICE_DT_INT32:
        sl_buf_put_i64(out, v.i32);
        break;
    case SLUICE_DT_UINT64:
        sl_buf_put_u64(out, v.u64);
        break;
    case SLUICE_DT_INT64:
        sl_buf_put_i64(out, v.i64);
        break;
    case SLUICE_DT_FP16:
        put_float(out, sl_half_to_float(v.u16), true);
        break;
    case SLUICE_DT_BF16: {
        uint32_t bits = (uint32_t)v.u16 << 16;
        float f;
        memcpy(&f, &bits, 4);
        put_float(out, f, true);
        break;
    }
    case SLUICE_DT_FP32:
        put_float(out, v.f32, true);
        break;
    case SLUICE_DT_FP64:
        put_float(out, v.f64, false);
        break;
    case SLUICE_DT_BYTES: {
        uint32_t n;
        memcpy(&n, p + ot->offs[i], 4);
        sl_buf_putc(out, '"');
        sl_buf_json_escape(out, (const char *)p + ot->offs[i] + 4, n);
        sl_buf_putc(out, '"');
        break;
    }
    default:
        SL_ASSERT(!"datatype refused by check_output");
    }
}

static void put_str(sl_buf_t *out, const char *s) {
    sl_buf_putc(out, '"');
    sl_buf_json_escape(out, s, strlen(s));
    sl_buf_putc(out, '"');
}

/* {"field":value,...} for row r. */
static void put_row(sl_buf_t *out, const sl_pipeline__model_step_t *s, const out_tensor_t *ots,
                    uint64_t r) {
    sl_buf_putc(out, '{');
    for (size_t i = 0; i < s->n_outputs; i++) {
        const sl_pipeline__output_t *o = &s->outputs[i];
        const out_tensor_t *ot = &ots[o->tensor];
        if (i) sl_buf_putc(out, ',');
        put_str(out, o->field);
        sl_buf_putc(out, ':');
        uint64_t first = r * ot->row_n;
        if (o->index >= 0) {
            put_element(out, ot, first + (uint64_t)o->index);
        } else if (ot->row_n == 1) {
            put_element(out, ot, first);
        } else {
            sl_buf_putc(out, '[');
            for (uint64_t k = 0; k < ot->row_n; k++) {
                if (k) sl_buf_putc(out, ',');
                put_element(out, ot, first + k);
            }
            sl_buf_putc(out, ']');
        }
    }
    sl_buf_putc(out, '}');
}

sl_infer_code_t sl_pipeline_encode(const sl_pipeline_t *p, const sl_pipeline_input_t *info,
                                   const sl_infer_response_t *resp, sl_buf_t *out,
                                   sl_infer_error_t *err) {
    const sl_pipeline__model_step_t *s = sl_pipeline__model(p);
    SL_ASSERT(info->rows >= 1);
    out_tensor_t ots[SL_PIPELINE_MAX_TENSORS] = {{0}};
    sl_infer_code_t rc = SL_INFER_OK;
    for (size_t t = 0; t < s->n_out_tensors && rc == SL_INFER_OK; t++)
        rc = check_output(p, s->out_tensors[t], info->rows, resp, &ots[t], err);
    for (size_t i = 0; i < s->n_outputs && rc == SL_INFER_OK; i++) {
        const sl_pipeline__output_t *o = &s->outputs[i];
        if (o->index >= 0 && (uint64_t)o->index >= ots[o->tensor].row_n) {
            rc = upstream(err,
                          "pipeline '%s': output field '%s' wants element %" PRId64
                          " of tensor '%.64s', whose rows have %" PRIu64,
                          p->name, o->field, o->index, s->out_tensors[o->tensor],
                          ots[o->tensor].row_n);
        }
    }
    if (rc == SL_INFER_OK) {
        sl_buf_puts(out, "{\"model\":");
        put_str(out, resp->model_name ? resp->model_name : s->model);
        sl_buf_puts(out, ",\"version\":");
        put_str(out, resp->model_version ? resp->model_version : "");
        if (info->instances) {
            sl_buf_puts(out, ",\"predictions\":[");
            for (uint32_t r = 0; r < info->rows; r++) {
                if (r) sl_buf_putc(out, ',');
                put_row(out, s, ots, r);
            }
            sl_buf_puts(out, "]}");
        } else {
            sl_buf_puts(out, ",\"outputs\":");
            put_row(out, s, ots, 0);
            sl_buf_putc(out, '}');
        }
    }
    for (size_t t = 0; t < s->n_out_tensors; t++)
        free(ots[t].offs);
    return rc;
}
