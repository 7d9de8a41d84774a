/* The Open Inference Protocol over gRPC: inference.GRPCInferenceService's methods on the
 * component's gRPC server, translating protobuf-c messages (proto/inference/grpc_service.proto,
 * the published field numbers) to and from the model manager's calls. Everything runs on the
 * call's I/O thread; inference and model control answer later, from their completion callbacks,
 * which the manager delivers on that same loop. */
#include "inference/oip.h"

#include "core/log.h"
#include "inference/model_config.h"

#include "inference/grpc_service.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor bytes are little-endian on the wire and in memory; typed contents are copied as is. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "oip_grpc.c assumes a little-endian host");

#define SERVICE "/inference.GRPCInferenceService/"
#define LOG_C   "inference"

/* ---- helpers ---- */

/* Packs m and answers the call with it (small messages without a heap allocation). */
static void reply_msg(sl_grpc_call_t *call, const ProtobufCMessage *m) {
    uint8_t small[1024];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = n <= sizeof small ? small : sl_malloc(n);
    protobuf_c_message_pack(m, buf);
    sl_grpc_reply(call, buf, n);
    if (buf != small) free(buf);
}

static void fail_infer(sl_grpc_call_t *call, const sl_infer_error_t *err) {
    sl_grpc_fail(call, (sl_grpc_code_t)sl_infer_code_grpc(err->code), err->msg);
}

static void fail_unparsable(sl_grpc_call_t *call, const char *what) {
    char msg[96];
    snprintf(msg, sizeof msg, "cannot parse %s", what);
    sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT, msg);
}

/* Allocations that live until one reply is packed, freed together. */
typedef struct bag {
    void **p;
    size_t n, cap;
} bag_t;

static void *bag_alloc(bag_t *b, size_t n) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->p = sl_realloc(b->p, b->cap * sizeof *b->p);
    }
    return b->p[b->n++] = sl_calloc(1, n ? n : 1);
}

static void bag_free(bag_t *b) {
    for (size_t i = 0; i < b->n; i++)
        free(b->p[i]);
    free(b->p);
}

/* "[2,16]" into buf (truncated to fit). */
static const char *fmt_shape(char *buf, size_t cap, const int64_t *dims, size_t ndim) {
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < ndim && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", dims[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

/* ---- health and metadata ---- */

static void server_live(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = 1;
    reply_msg(call, &r.base);
}

static void server_ready(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    r.ready = sl_mm_ready(ctx);
    reply_msg(call, &r.base);
}

static void server_metadata(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    r.name = (char *)SL_OIP_SERVER_NAME;
    r.version = (char *)SL_VERSION;
    r.n_extensions = sl_oip_extensions_n;
    r.extensions = (char **)sl_oip_extensions;
    reply_msg(call, &r.base);
}

/* ModelReady: known but not ready answers ready=false (as Triton does); unknown is NOT_FOUND. */
static void model_ready(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ModelReadyRequest *q = inference__model_ready_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "ModelReadyRequest");
        return;
    }
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    sl_infer_code_t c = SL_INFER_INVALID;
    if (!q->name[0]) {
        sl_infer_error_set(&err, SL_INFER_INVALID, "name is required");
    } else {
        c = sl_mm_acquire(ctx, q->name, q->version, &m, &err);
    }
    inference__model_ready_request__free_unpacked(q, NULL);
    if (c != SL_INFER_OK && c != SL_INFER_UNAVAILABLE) {
        fail_infer(call, &err);
        return;
    }
    if (m) sl_mm_release(m);
    Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
    r.ready = c == SL_INFER_OK;
    reply_msg(call, &r.base);
}

/* One TensorMetadata per declared tensor; batching models get a leading -1 (the batch dim). */
static Inference__ModelMetadataResponse__TensorMetadata **
tensor_metadata(bag_t *bag, const sluice_tensor_desc_t *descs, size_t n, bool batched) {
    Inference__ModelMetadataResponse__TensorMetadata **v = bag_alloc(bag, n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        Inference__ModelMetadataResponse__TensorMetadata init =
            INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
        Inference__ModelMetadataResponse__TensorMetadata *t = bag_alloc(bag, sizeof *t);
        *t = init;
        t->name = (char *)descs[i].name;
        t->datatype = (char *)sl_dtype_to_name(descs[i].dtype);
        t->n_shape = descs[i].ndim + (batched ? 1 : 0);
        t->shape = bag_alloc(bag, t->n_shape * sizeof *t->shape);
        size_t o = 0;
        if (batched) t->shape[o++] = -1;
        for (uint32_t d = 0; d < descs[i].ndim; d++)
            t->shape[o++] = descs[i].dims[d];
        v[i] = t;
    }
    return v;
}

static void model_metadata(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ModelMetadataRequest *q = inference__model_metadata_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "ModelMetadataRequest");
        return;
    }
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    sl_infer_code_t c = SL_INFER_INVALID;
    if (!q->name[0]) {
        sl_infer_error_set(&err, SL_INFER_INVALID, "name is required");
    } else {
        c = sl_mm_acquire(ctx, q->name, q->version, &m, &err);
    }
    inference__model_metadata_request__free_unpacked(q, NULL);
    if (c != SL_INFER_OK) {
        fail_infer(call, &err);
        return;
    }

    const sl_model_config_t *cfg = sl_mm_model_config(m);
    char **versions = sl_mm_versions(ctx, sl_mm_model_name(m));
    bag_t bag = {0};
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = (char *)sl_mm_model_name(m);
    r.platform = (char *)(cfg->platform ? cfg->platform : cfg->backend ? cfg->backend : "");
    for (char **v = versions; v && *v; v++)
        r.n_versions++;
    r.versions = versions;
    bool batched = cfg->max_batch_size > 0;
    r.n_inputs = cfg->n_inputs;
    r.inputs = tensor_metadata(&bag, cfg->inputs, cfg->n_inputs, batched);
    r.n_outputs = cfg->n_outputs;
    r.outputs = tensor_metadata(&bag, cfg->outputs, cfg->n_outputs, batched);
    reply_msg(call, &r.base);
    bag_free(&bag);
    sl_mm_strv_free(versions);
    sl_mm_release(m);
}

/* ---- statistics ---- */

typedef struct stats_acc {
    bag_t bag;
    Inference__ModelStatistics **v;
    size_t n, cap;
} stats_acc_t;

static Inference__StatisticDuration *duration(bag_t *bag, uint64_t count, uint64_t ns) {
    Inference__StatisticDuration init = INFERENCE__STATISTIC_DURATION__INIT;
    Inference__StatisticDuration *d = bag_alloc(bag, sizeof *d);
    *d = init;
    d->count = count;
    d->ns = ns;
    return d;
}

/* One version's ModelStatistics. Sluice times a backend's execute as a whole, so compute_infer
 * carries the compute time and compute_input/compute_output report the same count with 0 ns
 * (clients that divide ns by count get 0, not a division by zero). */
static void stats_one(sl_mm_model_t *m, void *arg) {
    stats_acc_t *acc = arg;
    bag_t *bag = &acc->bag;
    sl_model_stats_snapshot_t s;
    sl_model_stats_snapshot(sl_mm_model_stats(m), &s);

    Inference__ModelStatistics init = INFERENCE__MODEL_STATISTICS__INIT;
    Inference__ModelStatistics *ms = bag_alloc(bag, sizeof *ms);
    *ms = init;
    size_t nlen = strlen(sl_mm_model_name(m)), vlen = strlen(sl_mm_model_version(m));
    ms->name = memcpy(bag_alloc(bag, nlen + 1), sl_mm_model_name(m), nlen);
    ms->version = memcpy(bag_alloc(bag, vlen + 1), sl_mm_model_version(m), vlen);
    ms->last_inference = s.last_inference_ms;
    ms->inference_count = s.inference_count;
    ms->execution_count = s.execution_count;

    Inference__InferStatistics is_init = INFERENCE__INFER_STATISTICS__INIT;
    Inference__InferStatistics *is = bag_alloc(bag, sizeof *is);
    *is = is_init;
    is->success = duration(bag, s.success_count, s.success_ns);
    is->fail = duration(bag, s.fail_count, s.fail_ns);
    is->queue = duration(bag, s.queue_count, s.queue_ns);
    is->compute_input = duration(bag, s.compute_count, 0);
    is->compute_infer = duration(bag, s.compute_count, s.compute_ns);
    is->compute_output = duration(bag, s.compute_count, 0);
    is->cache_hit = duration(bag, s.cache_hit_count, s.cache_hit_ns);
    is->cache_miss = duration(bag, s.cache_miss_count, s.cache_miss_ns);
    ms->inference_stats = is;

    size_t nb = 0;
    for (uint32_t b = 1; b <= s.max_batch && s.executions_by_size; b++) {
        if (s.executions_by_size[b]) nb++;
    }
    ms->batch_stats = bag_alloc(bag, nb * sizeof *ms->batch_stats);
    for (uint32_t b = 1; b <= s.max_batch && s.executions_by_size; b++) {
        uint64_t count = s.executions_by_size[b];
        if (!count) continue;
        Inference__InferBatchStatistics bs_init = INFERENCE__INFER_BATCH_STATISTICS__INIT;
        Inference__InferBatchStatistics *bs = bag_alloc(bag, sizeof *bs);
        *bs = bs_init;
        bs->batch_size = b;
        bs->compute_input = duration(bag, count, 0);
        bs->compute_infer =
            duration(bag, count, s.compute_ns_by_size ? s.compute_ns_by_size[b] : 0);
        bs->compute_output = duration(bag, count, 0);
        ms->batch_stats[ms->n_batch_stats++] = bs;
    }
    sl_model_stats_snapshot_free(&s);

    if (acc->n == acc->cap) {
        acc->cap = acc->cap ? 2 * acc->cap : 8;
        acc->v = sl_realloc(acc->v, acc->cap * sizeof *acc->v);
    }
    acc->v[acc->n++] = ms;
}

/* An empty name means every model; an empty version every ready version (Triton's rules). */
static void model_statistics(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ModelStatisticsRequest *q =
        inference__model_statistics_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "ModelStatisticsRequest");
        return;
    }
    const char *name = q->name[0] ? q->name : NULL;
    const char *version = q->version[0] ? q->version : NULL;
    stats_acc_t acc = {0};
    size_t visited = sl_mm_each(ctx, name, version, stats_one, &acc);
    if (visited == 0 && name) {
        /* Say why: unknown model or version (NOT_FOUND) or not ready (UNAVAILABLE). */
        sl_mm_model_t *m = NULL;
        sl_infer_error_t err;
        sl_infer_code_t c = sl_mm_acquire(ctx, name, version, &m, &err);
        if (m) sl_mm_release(m);
        if (c == SL_INFER_OK) { /* it became ready in between: report it as not ready now */
            sl_infer_error_set(&err, SL_INFER_UNAVAILABLE, "model '%s' is not ready", name);
        }
        inference__model_statistics_request__free_unpacked(q, NULL);
        {
            fail_infer(call, &err);
            return;
        }
    }
    inference__model_statistics_request__free_unpacked(q, NULL);
    Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    r.n_model_stats = acc.n;
    r.model_stats = acc.v;
    reply_msg(call, &r.base);
    free(acc.v);
    bag_free(&acc.bag);
}

/* ---- model repository ---- */

static void repository_index(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryIndexRequest *q =
        inference__repository_index_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "RepositoryIndexRequest");
        return;
    }
    bool ready_only = q->ready;
    inference__repository_index_request__free_unpacked(q, NULL);

    sl_mm_index_entry_t *e = NULL;
    size_t n = sl_mm_index(ctx, ready_only, &e);
    Inference__RepositoryIndexResponse__ModelIndex *mi = sl_calloc(n ? n : 1, sizeof *mi);
    Inference__RepositoryIndexResponse__ModelIndex **mp = sl_calloc(n ? n : 1, sizeof *mp);
    for (size_t i = 0; i < n; i++) {
        Inference__RepositoryIndexResponse__ModelIndex init =
            INFERENCE__REPOSITORY_INDEX_RESPONSE__MODEL_INDEX__INIT;
        mi[i] = init;
        mi[i].name = e[i].name;
        mi[i].version = e[i].version ? e[i].version : (char *)"";
        mi[i].state = (char *)(e[i].state ? e[i].state : "");
        mi[i].reason = e[i].reason ? e[i].reason : (char *)"";
        mp[i] = &mi[i];
    }
    Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
    r.n_models = n;
    r.models = mp;
    reply_msg(call, &r.base);
    free(mp);
    free(mi);
    sl_mm_index_free(e, n);
}

/* A load or unload in flight: the call to answer and the request (its model name stays valid
 * until the manager has answered). */
typedef struct control_call {
    sl_grpc_call_t *call;
    ProtobufCMessage *req;
} control_call_t;

static void control_done(int status, const char *message, void *arg) {
    control_call_t *cc = arg;
    if (status == 0) {
        sl_grpc_reply(cc->call, "", 0); /* the empty Repository*Response */
    } else if (status == SL_ENOENT) {
        sl_grpc_fail(cc->call, SL_GRPC_NOT_FOUND, message);
    } else if (status == SL_EINVAL) {
        sl_grpc_fail(cc->call, SL_GRPC_INVALID_ARGUMENT, message);
    } else {
        SL_ERROR(LOG_C, "model control failed", SL_LF_S("error", sl_strerror(status)),
                 SL_LF_S("message", message ? message : ""));
        sl_grpc_fail(cc->call, SL_GRPC_INTERNAL, "model control failed; see the server log");
    }
    protobuf_c_message_free_unpacked(cc->req, NULL);
    free(cc);
}

/* Triton's load parameters "config" (a JSON config override) and "file:<path>" (artifact
 * overrides) are refused: Sluice loads what the repository holds, checked against its sha256. */
static bool control_params_ok(Inference__RepositoryModelLoadRequest__ParametersEntry **p, size_t n,
                              char *msg, size_t cap) {
    for (size_t i = 0; i < n; i++) {
        const char *key = p[i]->key ? p[i]->key : "";
        if (strcmp(key, "config") == 0 || strncmp(key, "file:", 5) == 0) {
            snprintf(msg, cap,
                     "parameter '%.64s' is not supported: edit the model's config.yaml and "
                     "version directories in the repository instead",
                     key);
            return false;
        }
    }
    return true;
}

/* Model names are directory names in the repository: the REST front end's character set, and
 * never "." or "..", so that no request can name a path outside it. */
static bool valid_model_name(const char *s) {
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 255) return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static void repository_load(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryModelLoadRequest *q =
        inference__repository_model_load_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "RepositoryModelLoadRequest");
        return;
    }
    char why[256];
    const char *bad = NULL;
    if (!q->model_name[0]) {
        bad = "model_name is required";
    } else if (!valid_model_name(q->model_name)) {
        bad = "model_name may only hold letters, digits, '_', '.' and '-'";
    } else if (!control_params_ok(q->parameters, q->n_parameters, why, sizeof why)) {
        bad = why;
    }
    if (bad) {
        sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT, bad);
        inference__repository_model_load_request__free_unpacked(q, NULL);
        return;
    }
    control_call_t *cc = sl_malloc(sizeof *cc);
    cc->call = call;
    cc->req = &q->base;
    sl_mm_load(ctx, q->model_name, sl_loop_current(), control_done, cc);
}

static void repository_unload(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryModelUnloadRequest *q =
        inference__repository_model_unload_request__unpack(NULL, len, msg);
    if (!q) {
        fail_unparsable(call, "RepositoryModelUnloadRequest");
        return;
    }
    /* unload_dependents is accepted and has nothing to do: Sluice has no ensembles. */
    if (!valid_model_name(q->model_name)) {
        sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT,
                     q->model_name[0] ? "model_name may only hold letters, digits, '_', '.' and '-'"
                                      : "model_name is required");
        inference__repository_model_unload_request__free_unpacked(q, NULL);
        return;
    }
    control_call_t *cc = sl_malloc(sizeof *cc);
    cc->call = call;
    cc->req = &q->base;
    sl_mm_unload(ctx, q->model_name, sl_loop_current(), control_done, cc);
}

/* ---- ModelInfer: request ---- */

/* The typed-contents field each datatype travels in (NULL: raw only). */
static const char *contents_field(sluice_dtype_t t) {
    switch (t) {
    case SLUICE_DT_BOOL:
        return "bool_contents";
    case SLUICE_DT_INT8:
    case SLUICE_DT_INT16:
    case SLUICE_DT_INT32:
        return "int_contents";
    case SLUICE_DT_INT64:
        return "int64_contents";
    case SLUICE_DT_UINT8:
    case SLUICE_DT_UINT16:
    case SLUICE_DT_UINT32:
        return "uint_contents";
    case SLUICE_DT_UINT64:
        return "uint64_contents";
    case SLUICE_DT_FP32:
        return "fp32_contents";
    case SLUICE_DT_FP64:
        return "fp64_contents";
    case SLUICE_DT_BYTES:
        return "bytes_contents";
    default:
        return NULL;
    }
}

static const char *const contents_names[] = {"bool_contents", "int_contents",    "int64_contents",
                                             "uint_contents", "uint64_contents", "fp32_contents",
                                             "fp64_contents", "bytes_contents"};

/* Value count of the named field of c (0 for NULL). */
static size_t contents_count(const Inference__InferTensorContents *c, const char *field) {
    const size_t counts[] = {c->n_bool_contents, c->n_int_contents,    c->n_int64_contents,
                             c->n_uint_contents, c->n_uint64_contents, c->n_fp32_contents,
                             c->n_fp64_contents, c->n_bytes_contents};
    for (size_t i = 0; field && i < SL_ARRAY_LEN(contents_names); i++) {
        if (strcmp(field, contents_names[i]) == 0) return counts[i];
    }
    return 0;
}

/* The first non-empty field of c other than `except` (NULL when there is none). */
static const char *contents_other(const Inference__InferTensorContents *c, const char *except) {
    for (size_t i = 0; i < SL_ARRAY_LEN(contents_names); i++) {
        const char *f = contents_names[i];
        if ((!except || strcmp(f, except) != 0) && contents_count(c, f) > 0) return f;
    }
    return NULL;
}

/* Narrows int_contents / uint_contents into 1- or 2-byte elements, range-checked. */
static sl_infer_code_t narrow(sl_infer_request_t *req, sl_infer_input_t *in, const void *src,
                              bool is_signed, size_t n, sl_infer_error_t *err) {
    size_t size = sluice_dtype_size(in->dtype);
    int64_t lo = 0, hi = 0;
    switch (in->dtype) {
    case SLUICE_DT_INT8:
        lo = INT8_MIN, hi = INT8_MAX;
        break;
    case SLUICE_DT_INT16:
        lo = INT16_MIN, hi = INT16_MAX;
        break;
    case SLUICE_DT_UINT8:
        hi = UINT8_MAX;
        break;
    default:
        hi = UINT16_MAX;
        break;
    }
    uint8_t *dst = sl_infer_request_alloc(req, n * size);
    for (size_t i = 0; i < n; i++) {
        int64_t v =
            is_signed ? (int64_t)((const int32_t *)src)[i] : (int64_t)((const uint32_t *)src)[i];
        if (v < lo || v > hi) {
            return sl_infer_error_set(
                err, SL_INFER_INVALID,
                "input '%s': contents.%s[%zu] = %" PRId64 " is out of range for %s", in->name,
                is_signed ? "int_contents" : "uint_contents", i, v, sl_dtype_to_name(in->dtype));
        }
        if (size == 1) {
            dst[i] = (uint8_t)v;
        } else {
            uint16_t u = (uint16_t)v;
            memcpy(dst + 2 * i, &u, 2);
        }
    }
    in->data = dst;
    in->byte_size = n * size;
    return SL_INFER_OK;
}

/* BYTES elements to the 4-byte-length-prefix encoding in the request's arena. */
static sl_infer_code_t encode_bytes(sl_infer_request_t *req, sl_infer_input_t *in,
                                    const ProtobufCBinaryData *v, size_t n, sl_infer_error_t *err) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].len > UINT32_MAX) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': bytes_contents[%zu] is over 4 GiB", in->name, i);
        }
        total += 4 + v[i].len;
    }
    uint8_t *dst = sl_infer_request_alloc(req, total);
    uint8_t *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)v[i].len;
        memcpy(p, &l, 4);
        if (l) memcpy(p + 4, v[i].data, l);
        p += 4 + l;
    }
    in->data = dst;
    in->byte_size = total;
    return SL_INFER_OK;
}

/* Typed contents of one input. Types whose protobuf representation equals the tensor's
 * (INT32, INT64, UINT32, UINT64, FP32, FP64) are used in place: the unpacked message lives
 * until the request completes. */
static sl_infer_code_t decode_contents(sl_infer_request_t *req, sl_infer_input_t *in,
                                       const Inference__InferTensorContents *c, int64_t numel,
                                       sl_infer_error_t *err) {
    const char *field = contents_field(in->dtype);
    const char *dt = sl_dtype_to_name(in->dtype);
    if (!field) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': %s data can only be sent in raw_input_contents",
                                  in->name, dt);
    }
    const char *other = contents_other(c, field);
    if (other) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': datatype %s takes contents.%s, got contents.%s",
                                  in->name, dt, field, other);
    }
    size_t n = contents_count(c, field);
    if ((uint64_t)numel != n) {
        char shape[96];
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': contents.%s has %zu values, shape %s needs %" PRId64,
                                  in->name, field, n,
                                  fmt_shape(shape, sizeof shape, in->dims, in->ndim), numel);
    }
    size_t size = sluice_dtype_size(in->dtype);
    switch (in->dtype) {
    case SLUICE_DT_BOOL: {
        uint8_t *dst = sl_infer_request_alloc(req, n);
        for (size_t i = 0; i < n; i++)
            dst[i] = c->bool_contents[i] ? 1 : 0;
        in->data = dst;
        in->byte_size = n;
        return SL_INFER_OK;
    }
    case SLUICE_DT_INT8:
    case SLUICE_DT_INT16:
        return narrow(req, in, c->int_contents, true, n, err);
    case SLUICE_DT_UINT8:
    case SLUICE_DT_UINT16:
        return narrow(req, in, c->uint_contents, false, n, err);
    case SLUICE_DT_INT32:
        in->data = c->int_contents;
        break;
    case SLUICE_DT_INT64:
        in->data = c->int64_contents;
        break;
    case SLUICE_DT_UINT32:
        in->data = c->uint_contents;
        break;
    case SLUICE_DT_UINT64:
        in->data = c->uint64_contents;
        break;
    case SLUICE_DT_FP32:
        in->data = c->fp32_contents;
        break;
    case SLUICE_DT_FP64:
        in->data = c->fp64_contents;
        break;
    case SLUICE_DT_BYTES:
        return encode_bytes(req, in, c->bytes_contents, n, err);
    default:
        SL_ASSERT(!"datatype without a contents field");
    }
    in->byte_size = n * size;
    return SL_INFER_OK;
}

static sl_infer_code_t parse_input(sl_infer_request_t *req, size_t idx,
                                   const Inference__ModelInferRequest__InferInputTensor *t,
                                   const ProtobufCBinaryData *raw, sl_infer_error_t *err) {
    if (!t->name[0]) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "inputs[%zu]: name is required", idx);
    }
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = sl_infer_request_strndup(req, t->name, strlen(t->name));
    in->dtype = sl_dtype_from_name(t->datatype, strlen(t->datatype));
    if (in->dtype == SLUICE_DT_INVALID) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': unknown datatype '%.32s'",
                                  in->name, t->datatype);
    }
    if (t->n_shape > SLUICE_MAX_DIMS) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': shape has %zu dimensions, at most %d are allowed",
                                  in->name, t->n_shape, SLUICE_MAX_DIMS);
    }
    for (size_t d = 0; d < t->n_shape; d++) {
        if (t->shape[d] < 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': shape[%zu] is %" PRId64 ", must be >= 0",
                                      in->name, d, t->shape[d]);
        }
        in->dims[d] = t->shape[d];
    }
    in->ndim = (uint32_t)t->n_shape;
    int64_t numel = sl_dims_numel(in->dims, in->ndim);
    if (numel < 0) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': shape has too many elements",
                                  in->name);
    }

    const Inference__InferTensorContents *c = t->contents;
    if (raw) {
        const char *other = c ? contents_other(c, NULL) : NULL;
        if (other) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': contents.%s must be empty when "
                                      "raw_input_contents is used",
                                      in->name, other);
        }
        size_t size = sluice_dtype_size(in->dtype);
        uint64_t want = 0;
        if (size && __builtin_mul_overflow((uint64_t)numel, size, &want)) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': shape has too many elements", in->name);
        }
        if (size && want != raw->len) {
            char shape[96];
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': raw_input_contents[%zu] has %zu bytes, %s %s "
                                      "needs %" PRIu64,
                                      in->name, idx, raw->len, sl_dtype_to_name(in->dtype),
                                      fmt_shape(shape, sizeof shape, in->dims, in->ndim), want);
        }
        /* BYTES framing is checked by sl_batch_validate. */
        in->data = raw->data;
        in->byte_size = raw->len;
        return SL_INFER_OK;
    }
    if (c && contents_other(c, NULL)) return decode_contents(req, in, c, numel, err);
    if (numel == 0) return SL_INFER_OK; /* an empty tensor needs no data */
    const char *field = contents_field(in->dtype);
    return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': no data: set %s%s%s", in->name,
                              field ? "contents." : "", field ? field : "",
                              field ? " or raw_input_contents" : "raw_input_contents");
}

/* Triton's scheduling parameters: "priority" and "timeout" (microseconds), int64 or uint64. */
static sl_infer_code_t parse_param(sl_infer_request_t *req,
                                   const Inference__ModelInferRequest__ParametersEntry *p,
                                   sl_infer_error_t *err) {
    const char *key = p->key ? p->key : "";
    bool prio = strcmp(key, "priority") == 0;
    if (!prio && strcmp(key, "timeout") != 0) return SL_INFER_OK; /* others are ignored */
    const Inference__InferParameter *v = p->value;
    uint64_t u;
    if (v && v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
        v->int64_param >= 0) {
        u = (uint64_t)v->int64_param;
    } else if (v && v->parameter_choice_case ==
                        INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM) {
        u = v->uint64_param;
    } else {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "parameter '%s': expected a non-negative int64_param or "
                                  "uint64_param",
                                  key);
    }
    if (prio) {
        if (u > UINT32_MAX) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "parameter 'priority': %" PRIu64 " is out of range", u);
        }
        req->priority = (uint32_t)u;
    } else {
        req->timeout_us = u;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t build_request(sl_infer_request_t *req, const Inference__ModelInferRequest *m,
                                     sl_infer_error_t *err) {
    if (!m->model_name[0]) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "model_name is required");
    }
    req->model_name = sl_infer_request_strndup(req, m->model_name, strlen(m->model_name));
    if (m->model_version[0]) {
        req->model_version =
            sl_infer_request_strndup(req, m->model_version, strlen(m->model_version));
    }
    if (m->id[0]) req->id = sl_infer_request_strndup(req, m->id, strlen(m->id));
    for (size_t i = 0; i < m->n_parameters; i++) {
        if (parse_param(req, m->parameters[i], err) != SL_INFER_OK) return err->code;
    }
    if (m->n_raw_input_contents && m->n_raw_input_contents != m->n_inputs) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "raw_input_contents has %zu entries, the request has %zu inputs",
                                  m->n_raw_input_contents, m->n_inputs);
    }
    for (size_t i = 0; i < m->n_inputs; i++) {
        const ProtobufCBinaryData *raw = m->n_raw_input_contents ? &m->raw_input_contents[i] : NULL;
        if (parse_input(req, i, m->inputs[i], raw, err) != SL_INFER_OK) return err->code;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        const Inference__ModelInferRequest__InferRequestedOutputTensor *o = m->outputs[i];
        if (!o->name[0]) {
            return sl_infer_error_set(err, SL_INFER_INVALID, "outputs[%zu]: name is required", i);
        }
        for (size_t k = 0; k < o->n_parameters; k++) {
            if (o->parameters[k]->key && strcmp(o->parameters[k]->key, "classification") == 0) {
                return sl_infer_error_set(err, SL_INFER_INVALID,
                                          "output '%.64s': parameter 'classification' is not "
                                          "supported",
                                          o->name);
            }
        }
        sl_infer_output_req_t *out = sl_infer_request_add_output(req);
        out->name = sl_infer_request_strndup(req, o->name, strlen(o->name));
    }
    return SL_INFER_OK;
}

/* ---- ModelInfer: response ---- */

/* An inference in flight (in the request's arena): the call to answer and the unpacked request,
 * which raw_input_contents and in-place typed contents point into. */
typedef struct infer_call {
    sl_grpc_call_t *call;
    Inference__ModelInferRequest *msg;
} infer_call_t;

/* Every output as raw_output_contents (what Triton returns): the response's data is packed in
 * place, with no copy before protobuf-c's. */
static void reply_infer(sl_grpc_call_t *call, const sl_infer_request_t *req,
                        const sl_infer_response_t *resp) {
    size_t n = resp->n_outputs;
    SL_ASSERT(n <= SL_MODEL_MAX_TENSORS);
    Inference__ModelInferResponse__InferOutputTensor outs[SL_MODEL_MAX_TENSORS];
    Inference__ModelInferResponse__InferOutputTensor *outp[SL_MODEL_MAX_TENSORS];
    ProtobufCBinaryData raw[SL_MODEL_MAX_TENSORS];
    for (size_t i = 0; i < n; i++) {
        const sl_infer_output_t *o = &resp->outputs[i];
        Inference__ModelInferResponse__InferOutputTensor init =
            INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
        outs[i] = init;
        outs[i].name = (char *)o->name;
        outs[i].datatype = (char *)sl_dtype_to_name(o->dtype);
        outs[i].n_shape = o->ndim;
        outs[i].shape = (int64_t *)o->dims;
        outp[i] = &outs[i];
        raw[i].len = o->byte_size;
        raw[i].data = o->data;
    }
    Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    r.model_name = (char *)resp->model_name;
    r.model_version = (char *)resp->model_version;
    r.id = (char *)(req->id ? req->id : "");
    r.n_outputs = n;
    r.outputs = outp;
    r.n_raw_output_contents = n;
    r.raw_output_contents = raw;
    reply_msg(call, &r.base);
}

/* Runs on the call's loop; answers even when the call was cancelled (that releases it). */
static void infer_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                       const sl_infer_error_t *err, void *arg) {
    infer_call_t *ic = arg;
    sl_grpc_call_t *call = ic->call;
    Inference__ModelInferRequest *msg = ic->msg;
    if (resp) {
        reply_infer(call, req, resp);
    } else {
        fail_infer(call, err);
    }
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
    inference__model_infer_request__free_unpacked(msg, NULL);
}

static void model_infer(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_loop_t *loop = sl_loop_current();
    if (!loop) { /* handlers run on I/O loops; without one the answer could not come back */
        SL_ERROR(LOG_C, "ModelInfer called outside an I/O loop");
        sl_grpc_fail(call, SL_GRPC_INTERNAL, "internal error");
        return;
    }
    Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, len, msg);
    if (!m) {
        fail_unparsable(call, "ModelInferRequest");
        return;
    }
    sl_infer_request_t *req = sl_infer_request_new(loop, infer_done, NULL);
    infer_call_t *ic = sl_infer_request_alloc(req, sizeof *ic);
    ic->call = call;
    ic->msg = m;
    req->done_arg = ic;
    sl_infer_error_t err;
    if (build_request(req, m, &err) != SL_INFER_OK) {
        fail_infer(call, &err);
        sl_infer_request_free(req);
        inference__model_infer_request__free_unpacked(m, NULL);
        return;
    }
    sl_mm_infer(ctx, req);
}

/* ---- registration ---- */

void sl_oip_grpc_register(sl_grpc_server_t *grpc, sl_mm_t *mm) {
    static const struct {
        const char *method;
        sl_grpc_handler_cb cb;
    } methods[] = {
        {SERVICE "ServerLive", server_live},
        {SERVICE "ServerReady", server_ready},
        {SERVICE "ModelReady", model_ready},
        {SERVICE "ServerMetadata", server_metadata},
        {SERVICE "ModelMetadata", model_metadata},
        {SERVICE "ModelInfer", model_infer},
        {SERVICE "ModelStatistics", model_statistics},
        {SERVICE "RepositoryIndex", repository_index},
        {SERVICE "RepositoryModelLoad", repository_load},
        {SERVICE "RepositoryModelUnload", repository_unload},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(methods); i++) {
        int rc = sl_grpc_server_add_method(grpc, methods[i].method, methods[i].cb, mm);
        SL_ASSERT(rc == 0); /* a fixed list of valid paths, registered once */
    }
}
