/* The Open Inference Protocol over gRPC: inference.GRPCInferenceService's methods on the
 * component's gRPC server, translating protobuf-c messages (proto/inference/grpc_service.proto,
 * the published field numbers) to and from the model manager's calls. Everything runs on the
 * call's I/O thread; inference and model control answer later, from their completion callbacks,
 * which the manager delivers on that same loop. ModelInfer itself is in oip_grpc_infer.c. */
#include "inference/oip.h"
#include "inference/oip_grpc_internal.h"

#include "core/log.h"
#include "inference/model_config.h"

#include "inference/grpc_service.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE "/inference.GRPCInferenceService/"
#define LOG_C   "inference"

/* ---- helpers ---- */

/* Packs m and answers the call with it (small messages without a heap allocation). */
void sl_oip_grpc__reply_msg(sl_grpc_call_t *call, const ProtobufCMessage *m) {
    uint8_t small[1024];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = n <= sizeof small ? small : sl_malloc(n);
    protobuf_c_message_pack(m, buf);
    sl_grpc_reply(call, buf, n);
    if (buf != small) free(buf);
}

void sl_oip_grpc__fail_infer(sl_grpc_call_t *call, const sl_infer_error_t *err) {
    sl_grpc_fail(call, (sl_grpc_code_t)sl_infer_code_grpc(err->code), err->msg);
}

void *sl_oip_grpc__unpack(sl_grpc_call_t *call, const ProtobufCMessageDescriptor *desc,
                          const uint8_t *msg, size_t len) {
    ProtobufCMessage *q = protobuf_c_message_unpack(desc, NULL, len, msg);
    if (!q) {
        char text[96];
        snprintf(text, sizeof text, "cannot parse %s", desc->short_name);
        sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT, text);
    }
    return q;
}

/* Acquires the model a ModelReady or ModelMetadata request names (an empty name is refused);
 * the result is sl_mm_acquire's. */
static sl_infer_code_t acquire_named(sl_mm_t *mm, const char *name, const char *version,
                                     sl_mm_model_t **m, sl_infer_error_t *err) {
    if (!name[0]) return sl_infer_error_set(err, SL_INFER_INVALID, "name is required");
    return sl_mm_acquire(mm, name, version, m, err);
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

/* ---- health and metadata ---- */

static void server_live(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = 1;
    sl_oip_grpc__reply_msg(call, &r.base);
}

static void server_ready(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    r.ready = sl_mm_ready(ctx);
    sl_oip_grpc__reply_msg(call, &r.base);
}

static void server_metadata(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    r.name = (char *)SL_OIP_SERVER_NAME;
    r.version = (char *)SL_VERSION;
    r.n_extensions = sl_oip_extensions_n;
    r.extensions = (char **)sl_oip_extensions;
    sl_oip_grpc__reply_msg(call, &r.base);
}

/* ModelReady: known but not ready answers ready=false (as Triton does); unknown is NOT_FOUND. */
static void model_ready(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__ModelReadyRequest *q =
        sl_oip_grpc__unpack(call, &inference__model_ready_request__descriptor, msg, len);
    if (!q) return;
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    sl_infer_code_t c = acquire_named(ctx, q->name, q->version, &m, &err);
    inference__model_ready_request__free_unpacked(q, NULL);
    if (c != SL_INFER_OK && c != SL_INFER_UNAVAILABLE) {
        sl_oip_grpc__fail_infer(call, &err);
        return;
    }
    if (m) sl_mm_release(m);
    Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
    r.ready = c == SL_INFER_OK;
    sl_oip_grpc__reply_msg(call, &r.base);
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
    Inference__ModelMetadataRequest *q =
        sl_oip_grpc__unpack(call, &inference__model_metadata_request__descriptor, msg, len);
    if (!q) return;
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    sl_infer_code_t c = acquire_named(ctx, q->name, q->version, &m, &err);
    inference__model_metadata_request__free_unpacked(q, NULL);
    if (c != SL_INFER_OK) {
        sl_oip_grpc__fail_infer(call, &err);
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
    sl_oip_grpc__reply_msg(call, &r.base);
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
        sl_oip_grpc__unpack(call, &inference__model_statistics_request__descriptor, msg, len);
    if (!q) return;
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
        sl_oip_grpc__fail_infer(call, &err);
        return;
    }
    inference__model_statistics_request__free_unpacked(q, NULL);
    Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    r.n_model_stats = acc.n;
    r.model_stats = acc.v;
    sl_oip_grpc__reply_msg(call, &r.base);
    free(acc.v);
    bag_free(&acc.bag);
}

/* ---- model repository ---- */

static void repository_index(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryIndexRequest *q =
        sl_oip_grpc__unpack(call, &inference__repository_index_request__descriptor, msg, len);
    if (!q) return;
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
    sl_oip_grpc__reply_msg(call, &r.base);
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

/* Answers a bad load or unload request (bad: the message for the client) or hands the model
 * control to the manager (start: sl_mm_load or sl_mm_unload); either way q (the unpacked request,
 * holding name) is freed once the call is answered. */
static void control_start(sl_grpc_call_t *call, sl_mm_t *mm, ProtobufCMessage *q, const char *name,
                          const char *bad,
                          void (*start)(sl_mm_t *, const char *, sl_loop_t *, sl_mm_control_cb,
                                        void *)) {
    if (bad) {
        sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT, bad);
        protobuf_c_message_free_unpacked(q, NULL);
        return;
    }
    control_call_t *cc = sl_malloc(sizeof *cc);
    cc->call = call;
    cc->req = q;
    start(mm, name, sl_loop_current(), control_done, cc);
}

/* What is wrong with a load or unload request's model_name; NULL if nothing. */
static const char *model_name_problem(const char *name) {
    if (!name[0]) return "model_name is required";
    if (!valid_model_name(name))
        return "model_name may only hold letters, digits, '_', '.' and '-'";
    return NULL;
}

static void repository_load(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryModelLoadRequest *q =
        sl_oip_grpc__unpack(call, &inference__repository_model_load_request__descriptor, msg, len);
    if (!q) return;
    char why[256];
    const char *bad = model_name_problem(q->model_name);
    if (!bad && !control_params_ok(q->parameters, q->n_parameters, why, sizeof why)) bad = why;
    control_start(call, ctx, &q->base, q->model_name, bad, sl_mm_load);
}

static void repository_unload(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    Inference__RepositoryModelUnloadRequest *q = sl_oip_grpc__unpack(
        call, &inference__repository_model_unload_request__descriptor, msg, len);
    if (!q) return;
    /* unload_dependents is accepted and has nothing to do: Sluice has no ensembles. */
    control_start(call, ctx, &q->base, q->model_name, model_name_problem(q->model_name),
                  sl_mm_unload);
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
        {SERVICE "ModelInfer", sl_oip_grpc__model_infer},
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
