/* The data path between requests and a backend (batch.h): request validation against the model
 * config, batches formed by concatenating inputs along dimension 0, the host function table
 * backends call on a batch, and the split of a batch's outputs into one response per request.
 * The scheduler decides which requests form a batch and when; this file only moves bytes. */
#include "inference/batch.h"

#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest tensor a backend may allocate as one output (the whole batch): past this a model
 * (or a request that makes one produce huge outputs) fails cleanly instead of exhausting
 * memory. */
#define MAX_OUTPUT_BYTES ((uint64_t)4 << 30)
/* Status messages are cut here: they end up in logs and client responses. */
#define MAX_STATUS_MSG 1024

/* ---- status objects ---- */

struct sluice_status {
    sluice_status_code_t code;
    char msg[];
};

static sluice_status_t *status_vnew(sluice_status_code_t code, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) n = 0;
    if (n > MAX_STATUS_MSG) n = MAX_STATUS_MSG;
    sluice_status_t *st = sl_malloc(sizeof *st + (size_t)n + 1);
    st->code = code;
    vsnprintf(st->msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return st;
}

static sluice_status_t *host_status_new(sluice_status_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static sluice_status_t *host_status_new(sluice_status_code_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sluice_status_t *st = status_vnew(code, fmt, ap);
    va_end(ap);
    return st;
}

sluice_status_code_t sl_status_code(const sluice_status_t *st) {
    SL_ASSERT(st);
    return st->code;
}

const char *sl_status_message(const sluice_status_t *st) {
    SL_ASSERT(st);
    return st->msg;
}

void sl_status_free(sluice_status_t *st) {
    free(st);
}

/* ---- validation ---- */

/* "[-1,64]": the shape a request must have (batch dimension first when batching). */
static void fmt_dims(char *out, size_t cap, bool batch_first, const int64_t *dims, uint32_t ndim) {
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "[");
    if (batch_first) n += (size_t)snprintf(out + n, cap - n, ndim ? "-1," : "-1");
    for (uint32_t i = 0; i < ndim && n < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (n < cap) snprintf(out + n, cap - n, "]");
}

static int find_input(const sl_model_config_t *cfg, const char *name) {
    for (uint32_t i = 0; i < cfg->n_inputs; i++) {
        if (strcmp(cfg->inputs[i].name, name) == 0) return (int)i;
    }
    return -1;
}

static int find_output(const sl_model_config_t *cfg, const char *name) {
    for (uint32_t i = 0; i < cfg->n_outputs; i++) {
        if (strcmp(cfg->outputs[i].name, name) == 0) return (int)i;
    }
    return -1;
}

/* Checks that data holds exactly numel well-formed BYTES elements (4-byte little-endian length,
 * then that many bytes). Returns true, or false with the first problem described in why. */
static bool check_bytes(const uint8_t *p, uint64_t len, int64_t numel, char *why, size_t cap) {
    uint64_t off = 0;
    for (int64_t e = 0; e < numel; e++) {
        if (len - off < 4) {
            snprintf(why, cap, "ends inside the length prefix of element %lld", (long long)e);
            return false;
        }
        uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                     (uint32_t)p[off + 3] << 24;
        off += 4;
        if (n > len - off) {
            snprintf(why, cap, "element %lld claims %u bytes, only %llu remain", (long long)e, n,
                     (unsigned long long)(len - off));
            return false;
        }
        off += n;
    }
    if (off != len) {
        snprintf(why, cap, "has %llu bytes after its last element",
                 (unsigned long long)(len - off));
        return false;
    }
    return true;
}

static sl_infer_code_t check_input(const sl_model_config_t *cfg, const sluice_tensor_desc_t *d,
                                   const sl_infer_input_t *in, int64_t *batch, const char **first,
                                   sl_infer_error_t *err) {
    const bool batching = cfg->max_batch_size > 0;
    const uint32_t off = batching ? 1 : 0;
    char want[200], got[200];
    if (in->dtype != d->dtype) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': expected datatype %s, got %s",
                                  d->name, sl_dtype_to_name(d->dtype), sl_dtype_to_name(in->dtype));
    }
    /* The shapes are formatted only for an error message (never on the hot path). */
#define SHAPES()                                                                                   \
    (fmt_dims(want, sizeof want, batching, d->dims, d->ndim),                                      \
     fmt_dims(got, sizeof got, false, in->dims, in->ndim <= SLUICE_MAX_DIMS ? in->ndim : 0))
    if (in->ndim != d->ndim + off) {
        SHAPES();
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': expected shape %s, got %s",
                                  d->name, want, got);
    }
    for (uint32_t k = 0; k < in->ndim; k++) {
        if (in->dims[k] < 0) {
            SHAPES();
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': dimension %u of shape %s is negative", d->name,
                                      k, got);
        }
    }
    if (batching) {
        int64_t b = in->dims[0];
        if (b < 1 || b > (int64_t)cfg->max_batch_size) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': batch size (first dimension) %lld is outside "
                                      "1..%u (max_batch_size)",
                                      d->name, (long long)b, cfg->max_batch_size);
        }
        if (*batch >= 0 && b != *batch) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': batch size %lld differs from input '%s' (%lld)",
                                      d->name, (long long)b, *first, (long long)*batch);
        }
        *batch = b;
        *first = d->name;
    }
    for (uint32_t k = 0; k < d->ndim; k++) {
        if (d->dims[k] >= 0 && in->dims[k + off] != d->dims[k]) {
            SHAPES();
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': expected shape %s, got %s", d->name, want, got);
        }
    }
    int64_t numel = sl_dims_numel(in->dims, in->ndim);
    if (numel < 0) {
        SHAPES();
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': shape %s is too large",
                                  d->name, got);
    }
    if (in->dtype == SLUICE_DT_BYTES) {
        char why[128];
        if (!check_bytes(in->data, in->data ? in->byte_size : 0, numel, why, sizeof why)) {
            SHAPES();
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': BYTES data (%llu bytes for shape %s) %s",
                                      d->name, (unsigned long long)in->byte_size, got, why);
        }
        return SL_INFER_OK;
    }
    size_t esz = sluice_dtype_size(in->dtype);
    if (esz == 0 || (uint64_t)numel > UINT64_MAX / esz) {
        SHAPES();
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': shape %s is too large",
                                  d->name, got);
    }
    uint64_t bytes = (uint64_t)numel * esz;
    if (in->byte_size != bytes || (bytes && !in->data)) {
        SHAPES();
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': shape %s of %s needs %llu bytes, got %llu", d->name,
                                  got, sl_dtype_to_name(in->dtype), (unsigned long long)bytes,
                                  (unsigned long long)in->byte_size);
    }
#undef SHAPES
    return SL_INFER_OK;
}

sl_infer_code_t sl_batch_validate(const sl_model_config_t *cfg, sl_infer_request_t *req,
                                  sl_infer_error_t *err) {
    int pos[SL_MODEL_MAX_TENSORS];
    for (uint32_t c = 0; c < cfg->n_inputs; c++)
        pos[c] = -1;
    for (size_t r = 0; r < req->n_inputs; r++) {
        const char *name = req->inputs[r].name ? req->inputs[r].name : "";
        int c = find_input(cfg, name);
        if (c < 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID, "model '%s' has no input '%s'",
                                      cfg->name, name);
        }
        if (pos[c] >= 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s' is given more than once",
                                      name);
        }
        pos[c] = (int)r;
    }
    for (uint32_t c = 0; c < cfg->n_inputs; c++) {
        if (pos[c] < 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "missing input '%s' (model '%s' expects %u inputs)",
                                      cfg->inputs[c].name, cfg->name, cfg->n_inputs);
        }
    }
    int64_t batch = -1;
    const char *first = NULL;
    bool in_order = true;
    for (uint32_t c = 0; c < cfg->n_inputs; c++) {
        sl_infer_code_t code =
            check_input(cfg, &cfg->inputs[c], &req->inputs[pos[c]], &batch, &first, err);
        if (code != SL_INFER_OK) return code;
        if (pos[c] != (int)c) in_order = false;
    }
    bool seen[SL_MODEL_MAX_TENSORS] = {false};
    for (size_t k = 0; k < req->n_outputs; k++) {
        const char *name = req->outputs[k].name ? req->outputs[k].name : "";
        int o = find_output(cfg, name);
        if (o < 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "model '%s' has no output '%s' (requested in outputs)",
                                      cfg->name, name);
        }
        if (seen[o]) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "output '%s' is requested more than once", name);
        }
        seen[o] = true;
    }
    if (!in_order) {
        /* Config order lets the batch address inputs by index. The arena copy lives as long as
         * the request; the array keeps its place (and capacity) in the request. */
        sl_infer_input_t *tmp = sl_infer_request_alloc(req, cfg->n_inputs * sizeof *tmp);
        memcpy(tmp, req->inputs, cfg->n_inputs * sizeof *tmp);
        for (uint32_t c = 0; c < cfg->n_inputs; c++)
            req->inputs[c] = tmp[pos[c]];
    }
    return SL_INFER_OK;
}

uint64_t sl_batch_request_size(const sl_model_config_t *cfg, const sl_infer_request_t *req) {
    if (cfg->max_batch_size == 0 || req->n_inputs == 0) return 1;
    return (uint64_t)req->inputs[0].dims[0];
}

bool sl_batch_can_join(const sl_model_config_t *cfg, const sl_infer_request_t *a,
                       const sl_infer_request_t *b) {
    if (cfg->max_batch_size == 0 || a->n_inputs != b->n_inputs) return false;
    for (size_t i = 0; i < a->n_inputs; i++) {
        const sl_infer_input_t *x = &a->inputs[i], *y = &b->inputs[i];
        if (x->ndim != y->ndim || x->ndim == 0) return false;
        for (uint32_t k = 1; k < x->ndim; k++) {
            if (x->dims[k] != y->dims[k]) return false;
        }
    }
    return true;
}

/* ---- batches ---- */

typedef struct out_slot {
    bool wanted, allocated;
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[SLUICE_MAX_DIMS];
    void *data;
    uint64_t byte_size;
} out_slot_t;

struct sluice_batch {
    const sl_model_config_t *cfg;
    const char *name, *version;
    sl_infer_request_t **reqs; /* n; completed (and gone) after sl_batch_finish */
    uint64_t *rows;            /* n: each request's batch size */
    size_t n;
    uint64_t total; /* sum of rows; 1 for non-batching models */
    uint64_t t_formed_ns;
    sluice_tensor_t *inputs; /* n_inputs, config order */
    void **in_owned;         /* n_inputs: concatenated buffers (NULL when zero-copy) */
    size_t n_inputs;
    out_slot_t *outs; /* n_outputs, config order */
    size_t n_outputs;
    bool finished;
};

static size_t align16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

sluice_batch_t *sl_batch_new(const sl_model_config_t *cfg, const char *name, const char *version,
                             sl_infer_request_t *const *reqs, size_t n) {
    SL_ASSERT(n >= 1);
    SL_ASSERT(cfg->max_batch_size > 0 || n == 1);
    const size_t n_in = cfg->n_inputs, n_out = cfg->n_outputs;
    /* One block: the struct, then the arrays (each 16-byte aligned). */
    size_t o_reqs = align16(sizeof(sluice_batch_t));
    size_t o_rows = o_reqs + align16(n * sizeof(sl_infer_request_t *));
    size_t o_in = o_rows + align16(n * sizeof(uint64_t));
    size_t o_owned = o_in + align16(n_in * sizeof(sluice_tensor_t));
    size_t o_outs = o_owned + align16(n_in * sizeof(void *));
    size_t size = o_outs + n_out * sizeof(out_slot_t);
    uint8_t *block = sl_calloc(1, size);
    sluice_batch_t *b = (sluice_batch_t *)block;
    b->cfg = cfg;
    b->name = name;
    b->version = version;
    b->reqs = (sl_infer_request_t **)(block + o_reqs);
    b->rows = (uint64_t *)(block + o_rows);
    b->inputs = (sluice_tensor_t *)(block + o_in);
    b->in_owned = (void **)(block + o_owned);
    b->outs = (out_slot_t *)(block + o_outs);
    b->n = n;
    b->n_inputs = n_in;
    b->n_outputs = n_out;
    b->t_formed_ns = sl_now_ns();

    for (size_t r = 0; r < n; r++) {
        b->reqs[r] = reqs[r];
        b->rows[r] = sl_batch_request_size(cfg, reqs[r]);
        b->total += b->rows[r];
        SL_ASSERT(reqs[r]->n_inputs == n_in);
        if (r > 0) SL_ASSERT(sl_batch_can_join(cfg, reqs[0], reqs[r]));
    }
    for (size_t i = 0; i < n_in; i++) {
        const sl_infer_input_t *first = &reqs[0]->inputs[i];
        sluice_tensor_t *t = &b->inputs[i];
        t->name = cfg->inputs[i].name;
        t->dtype = first->dtype;
        t->ndim = first->ndim;
        memcpy(t->dims, first->dims, sizeof t->dims);
        if (n == 1) {
            t->data = first->data;
            t->byte_size = first->byte_size;
            continue;
        }
        uint64_t bytes = 0;
        for (size_t r = 0; r < n; r++)
            bytes += reqs[r]->inputs[i].byte_size;
        uint8_t *buf = sl_malloc(bytes ? (size_t)bytes : 1);
        uint64_t at = 0;
        for (size_t r = 0; r < n; r++) {
            const sl_infer_input_t *in = &reqs[r]->inputs[i];
            if (in->byte_size) memcpy(buf + at, in->data, in->byte_size);
            at += in->byte_size;
        }
        b->in_owned[i] = buf;
        t->data = buf;
        t->byte_size = bytes;
        t->dims[0] = (int64_t)b->total;
    }
    for (size_t r = 0; r < n; r++) {
        const sl_infer_request_t *req = reqs[r];
        if (req->n_outputs == 0) {
            for (size_t o = 0; o < n_out; o++)
                b->outs[o].wanted = true;
            continue;
        }
        for (size_t k = 0; k < req->n_outputs; k++) {
            int o = find_output(cfg, req->outputs[k].name);
            SL_ASSERT(o >= 0); /* validated */
            b->outs[o].wanted = true;
        }
    }
    return b;
}

void sl_batch_free(sluice_batch_t *b) {
    if (!b) return;
    /* Freeing a batch before finishing it would leave its requests unanswered forever. */
    SL_ASSERT(b->finished);
    for (size_t i = 0; i < b->n_inputs; i++)
        free(b->in_owned[i]);
    for (size_t o = 0; o < b->n_outputs; o++)
        free(b->outs[o].data);
    free(b);
}

/* ---- host functions ---- */

static uint32_t host_batch_request_count(const sluice_batch_t *b) {
    return (uint32_t)b->n;
}

static uint64_t host_batch_size(const sluice_batch_t *b) {
    return b->total;
}

static const sluice_tensor_t *host_batch_input(const sluice_batch_t *b, size_t i) {
    return i < b->n_inputs ? &b->inputs[i] : NULL;
}

static bool host_batch_output_wanted(const sluice_batch_t *b, size_t i) {
    return i < b->n_outputs && b->outs[i].wanted;
}

static sluice_status_t *host_output_alloc(sluice_batch_t *b, size_t i, sluice_dtype_t dtype,
                                          uint32_t ndim, const int64_t *dims, uint64_t byte_size,
                                          void **data) {
    if (!data || (ndim && !dims)) {
        return host_status_new(SLUICE_STATUS_INTERNAL, "output_alloc: NULL argument");
    }
    *data = NULL;
    if (i >= b->n_outputs) {
        return host_status_new(SLUICE_STATUS_INTERNAL,
                               "output_alloc: output index %zu out of range (model has %zu)", i,
                               b->n_outputs);
    }
    const sluice_tensor_desc_t *d = &b->cfg->outputs[i];
    out_slot_t *s = &b->outs[i];
    if (s->allocated) {
        return host_status_new(SLUICE_STATUS_INTERNAL, "output '%s' allocated twice", d->name);
    }
    const bool batching = b->cfg->max_batch_size > 0;
    const uint32_t off = batching ? 1 : 0;
    if (dtype != d->dtype) {
        return host_status_new(
            SLUICE_STATUS_INVALID_ARGUMENT,
            "output '%s': the model produced datatype %s, its config declares %s", d->name,
            sl_dtype_to_name(dtype), sl_dtype_to_name(d->dtype));
    }
    /* The shapes are formatted only for an error message (never on the hot path). */
    char want[200], got[200];
#define OUT_SHAPES()                                                                               \
    (fmt_dims(want, sizeof want, batching, d->dims, d->ndim),                                      \
     fmt_dims(got, sizeof got, false, dims, ndim <= SLUICE_MAX_DIMS ? ndim : 0))
    bool ok = ndim == d->ndim + off && ndim <= SLUICE_MAX_DIMS;
    for (uint32_t k = 0; ok && k < ndim; k++) {
        if (dims[k] < 0) ok = false;
    }
    if (ok && batching && (uint64_t)dims[0] != b->total) ok = false;
    for (uint32_t k = 0; ok && k < d->ndim; k++) {
        if (d->dims[k] >= 0 && dims[k + off] != d->dims[k]) ok = false;
    }
    if (!ok) {
        OUT_SHAPES();
        return host_status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                               "output '%s': the model produced shape %s for a batch of %llu, its "
                               "config declares %s",
                               d->name, got, (unsigned long long)b->total, want);
    }
    int64_t numel = sl_dims_numel(dims, ndim);
    uint64_t bytes = byte_size;
    if (dtype != SLUICE_DT_BYTES) {
        size_t esz = sluice_dtype_size(dtype);
        if (numel < 0 || esz == 0 || (uint64_t)numel > MAX_OUTPUT_BYTES / esz) {
            bytes = MAX_OUTPUT_BYTES + 1;
        } else {
            bytes = (uint64_t)numel * esz;
        }
        if (byte_size != 0 && byte_size != bytes && bytes <= MAX_OUTPUT_BYTES) {
            OUT_SHAPES();
            return host_status_new(
                SLUICE_STATUS_INTERNAL, "output '%s': byte_size %llu contradicts shape %s of %s",
                d->name, (unsigned long long)byte_size, got, sl_dtype_to_name(dtype));
        }
    } else if (numel < 0 || bytes < 4 * (uint64_t)numel) {
        OUT_SHAPES();
        return host_status_new(SLUICE_STATUS_INTERNAL,
                               "output '%s': %llu bytes cannot hold %s BYTES elements", d->name,
                               (unsigned long long)bytes, got);
    }
    if (bytes > MAX_OUTPUT_BYTES) {
        OUT_SHAPES();
        return host_status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                               "output '%s': shape %s exceeds the %llu-byte output limit", d->name,
                               got, (unsigned long long)MAX_OUTPUT_BYTES);
    }
    /* Zeroed: a backend that leaves part of a buffer unwritten must not leak heap contents. */
    s->data = sl_calloc(1, bytes ? (size_t)bytes : 1);
    s->allocated = true;
    s->dtype = dtype;
    s->ndim = ndim;
    memset(s->dims, 0, sizeof s->dims);
    if (ndim) memcpy(s->dims, dims, ndim * sizeof *dims);
    s->byte_size = bytes;
    *data = s->data;
    return NULL;
#undef OUT_SHAPES
}

static void host_log(int level, const char *msg) {
    sl_log_level_t l = level <= 0   ? SL_LOG_DEBUG
                       : level >= 3 ? SL_LOG_ERROR
                                    : (sl_log_level_t)level;
    SL_LOG(l, "backend", "backend says", SL_LF_S("detail", msg ? msg : ""));
}

static const sluice_host_t host = {
    .api_major = SLUICE_BACKEND_API_MAJOR,
    .api_minor = SLUICE_BACKEND_API_MINOR,
    .status_new = host_status_new,
    .log = host_log,
    .batch_request_count = host_batch_request_count,
    .batch_size = host_batch_size,
    .batch_input = host_batch_input,
    .batch_output_wanted = host_batch_output_wanted,
    .output_alloc = host_output_alloc,
};

const sluice_host_t *sl_backend_host(void) {
    return &host;
}

/* ---- splitting outputs ---- */

static void fail_all(sluice_batch_t *b, sl_infer_code_t code, const char *msg) {
    sl_infer_error_t err;
    if (code == SL_INFER_INVALID) {
        sl_infer_error_set(&err, code, "%s", msg);
    } else {
        SL_ERROR("inference", "model execution failed", SL_LF_S("model", b->name),
                 SL_LF_S("version", b->version), SL_LF_U("requests", b->n), SL_LF_S("error", msg));
        sl_infer_error_set(&err, SL_INFER_INTERNAL, "internal error while executing model '%s'",
                           b->name);
    }
    for (size_t r = 0; r < b->n; r++) {
        sl_infer_request_t *req = b->reqs[r];
        b->reqs[r] = NULL;
        sl_infer_request_complete(req, NULL, &err);
    }
}

/* Byte offsets of each request's rows in output o: bounds[r] .. bounds[r + 1]. Returns false
 * when a BYTES output is malformed. */
static bool row_bounds(const sluice_batch_t *b, const out_slot_t *s, uint64_t *bounds) {
    bounds[0] = 0;
    if (b->cfg->max_batch_size == 0) {
        bounds[1] = s->byte_size;
        return true;
    }
    if (s->dtype != SLUICE_DT_BYTES) {
        uint64_t per_row = b->total ? s->byte_size / b->total : 0;
        uint64_t row = 0;
        for (size_t r = 0; r < b->n; r++) {
            row += b->rows[r];
            bounds[r + 1] = row * per_row;
        }
        return true;
    }
    /* BYTES: walk the length prefixes, numel(dims[1:]) elements per row. */
    int64_t per_row = sl_dims_numel(s->dims + 1, s->ndim - 1);
    const uint8_t *p = s->data;
    uint64_t off = 0;
    for (size_t r = 0; r < b->n; r++) {
        uint64_t elems = b->rows[r] * (uint64_t)per_row;
        for (uint64_t e = 0; e < elems; e++) {
            if (s->byte_size - off < 4) return false;
            uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                         (uint32_t)p[off + 3] << 24;
            off += 4;
            if (n > s->byte_size - off) return false;
            off += n;
        }
        bounds[r + 1] = off;
    }
    return off == s->byte_size;
}

void sl_batch_finish(sluice_batch_t *b, sluice_status_t *st) {
    SL_ASSERT(!b->finished);
    b->finished = true;
    uint64_t now = sl_now_ns();
    for (size_t r = 0; r < b->n; r++) {
        sl_infer_request_t *req = b->reqs[r];
        if (!req->t_compute_start_ns) req->t_compute_start_ns = b->t_formed_ns;
        if (!req->t_compute_end_ns) req->t_compute_end_ns = now;
    }
    if (st) {
        fail_all(b,
                 sl_status_code(st) == SLUICE_STATUS_INVALID_ARGUMENT ? SL_INFER_INVALID
                                                                      : SL_INFER_INTERNAL,
                 sl_status_message(st));
        sl_status_free(st);
        return;
    }
    const size_t stride = b->n + 1;
    uint64_t *bounds = sl_malloc(b->n_outputs * stride * sizeof *bounds);
    for (size_t o = 0; o < b->n_outputs; o++) {
        const out_slot_t *s = &b->outs[o];
        if (!s->wanted) continue;
        char msg[256];
        if (!s->allocated) {
            snprintf(msg, sizeof msg, "the backend did not produce output '%s'",
                     b->cfg->outputs[o].name);
        } else if (!row_bounds(b, s, bounds + o * stride)) {
            snprintf(msg, sizeof msg, "the backend produced malformed BYTES output '%s'",
                     b->cfg->outputs[o].name);
        } else {
            continue;
        }
        free(bounds);
        fail_all(b, SL_INFER_INTERNAL, msg);
        return;
    }
    const bool batching = b->cfg->max_batch_size > 0;
    for (size_t r = 0; r < b->n; r++) {
        sl_infer_request_t *req = b->reqs[r];
        size_t idx[SL_MODEL_MAX_TENSORS];
        const char *names[SL_MODEL_MAX_TENSORS];
        size_t n_o = req->n_outputs ? req->n_outputs : b->n_outputs;
        SL_ASSERT(n_o <= SL_MODEL_MAX_TENSORS);
        uint64_t bytes = 0;
        for (size_t k = 0; k < n_o; k++) {
            idx[k] = req->n_outputs ? (size_t)find_output(b->cfg, req->outputs[k].name) : k;
            names[k] = b->cfg->outputs[idx[k]].name;
            const uint64_t *bd = bounds + idx[k] * stride;
            bytes += align16(bd[r + 1] - bd[r]);
        }
        sl_infer_response_t *resp = sl_infer_response_new(b->name, b->version, n_o, names, bytes);
        uint8_t *dst = sl_infer_response_data(resp);
        for (size_t k = 0; k < n_o; k++) {
            const out_slot_t *s = &b->outs[idx[k]];
            const uint64_t *bd = bounds + idx[k] * stride;
            sl_infer_output_t *out = &resp->outputs[k];
            out->dtype = s->dtype;
            out->ndim = s->ndim;
            memcpy(out->dims, s->dims, sizeof out->dims);
            if (batching) out->dims[0] = (int64_t)b->rows[r];
            out->byte_size = bd[r + 1] - bd[r];
            out->data = dst;
            if (out->byte_size) memcpy(dst, (const uint8_t *)s->data + bd[r], out->byte_size);
            dst += align16(out->byte_size);
        }
        b->reqs[r] = NULL;
        sl_infer_request_complete(req, resp, NULL);
    }
    free(bounds);
}
