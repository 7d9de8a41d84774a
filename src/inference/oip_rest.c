/* The Open Inference Protocol over REST: the /v2 routes (health, server and model metadata,
 * infer with JSON or binary tensors, Triton's repository, configuration and statistics
 * extensions). Handlers only translate between HTTP and the model manager; the codec is
 * oip/oip_json.h. Errors are OIP's {"error": "message"}. */
#include "inference/oip.h"

#include "core/json.h"
#include "core/log.h"
#include "oip/oip_json.h"
#include "oip/oip_path.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sl_oip_extensions[] = {
    "binary_tensor_data", "model_repository", "model_configuration",
    "schedule_policy",    "statistics",
};
const size_t sl_oip_extensions_n = SL_ARRAY_LEN(sl_oip_extensions);

#define JSON_TYPE "application/json"

/* ---- responses ---- */

static void respond_buf(sl_http_req_t *r, int status, sl_buf_t *b) {
    if (!b->data) sl_buf_puts(b, "");
    sl_http_respond_take(r, status, JSON_TYPE, b->data, b->len);
    *b = (sl_buf_t)SL_BUF_INIT;
}

static void put_str(sl_buf_t *b, const char *s) {
    sl_buf_putc(b, '"');
    sl_buf_json_escape(b, s, strlen(s));
    sl_buf_putc(b, '"');
}

/* OIP's error body, {"error": "message"}. */
static void respond_error(sl_http_req_t *r, int status, const char *msg) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"error\":");
    put_str(&b, msg);
    sl_buf_putc(&b, '}');
    respond_buf(r, status, &b);
}

static void respond_infer_error(sl_http_req_t *r, const sl_infer_error_t *e) {
    if (e->code == SL_INFER_OVERLOADED) sl_http_resp_header(r, "Retry-After", "1");
    respond_error(r, sl_infer_code_http(e->code), e->msg);
}

static void respond_empty(sl_http_req_t *r, int status) {
    sl_http_respond(r, status, NULL, "", 0);
}

/* ---- paths ---- */

/* Parses the rest of /v2/models/...; answers the request and returns false when it is not one
 * of ours. */
static bool parse_model_path(sl_http_req_t *r, sl_str_t rest, sl_oip_model_path_t *p) {
    const char *msg;
    int status = sl_oip_parse_model_path(rest, p, &msg);
    if (status) respond_error(r, status, msg);
    return status == 0;
}

static sl_str_t path_rest(const sl_http_req_t *r, const char *prefix) {
    size_t n = strlen(prefix);
    SL_ASSERT(r->path.len >= n);
    return (sl_str_t){r->path.ptr + n, r->path.len - n};
}

/* ---- health and server metadata ---- */

static void handle_live(sl_http_req_t *r, void *ctx) {
    respond_empty(r, 200);
}

static void handle_ready(sl_http_req_t *r, void *ctx) {
    respond_empty(r, sl_mm_ready(ctx) ? 200 : 503);
}

static void handle_server_metadata(sl_http_req_t *r, void *ctx) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"name\":\"" SL_OIP_SERVER_NAME "\",\"version\":");
    put_str(&b, SL_VERSION);
    sl_buf_puts(&b, ",\"extensions\":[");
    for (size_t i = 0; i < sl_oip_extensions_n; i++) {
        if (i) sl_buf_putc(&b, ',');
        put_str(&b, sl_oip_extensions[i]);
    }
    sl_buf_puts(&b, "]}");
    respond_buf(r, 200, &b);
}

/* ---- model metadata, readiness, config ---- */

static void put_tensors(sl_buf_t *b, const sluice_tensor_desc_t *t, uint32_t n, bool batch) {
    for (uint32_t i = 0; i < n; i++) {
        sl_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        put_str(b, t[i].name);
        sl_buf_printf(b, ",\"datatype\":\"%s\",\"shape\":[%s", sl_dtype_to_name(t[i].dtype),
                      batch ? "-1" : "");
        for (uint32_t d = 0; d < t[i].ndim; d++) {
            sl_buf_printf(b, (d || batch) ? ",%" PRId64 : "%" PRId64, t[i].dims[d]);
        }
        sl_buf_puts(b, "]}");
    }
}

static void model_metadata(sl_http_req_t *r, sl_mm_t *mm, sl_mm_model_t *m) {
    const sl_model_config_t *cfg = sl_mm_model_config(m);
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"name\":");
    put_str(&b, sl_mm_model_name(m));
    sl_buf_puts(&b, ",\"versions\":[");
    char **versions = sl_mm_versions(mm, sl_mm_model_name(m));
    for (size_t i = 0; versions && versions[i]; i++) {
        if (i) sl_buf_putc(&b, ',');
        put_str(&b, versions[i]);
    }
    sl_mm_strv_free(versions);
    sl_buf_puts(&b, "],\"platform\":");
    put_str(&b, cfg->platform ? cfg->platform : cfg->backend ? cfg->backend : "");
    sl_buf_puts(&b, ",\"inputs\":[");
    put_tensors(&b, cfg->inputs, cfg->n_inputs, cfg->max_batch_size > 0);
    sl_buf_puts(&b, "],\"outputs\":[");
    put_tensors(&b, cfg->outputs, cfg->n_outputs, cfg->max_batch_size > 0);
    sl_buf_puts(&b, "]}");
    respond_buf(r, 200, &b);
}

/* ---- statistics ---- */

static void put_duration(sl_buf_t *b, const char *name, uint64_t count, uint64_t ns) {
    sl_buf_printf(b, "\"%s\":{\"count\":%" PRIu64 ",\"ns\":%" PRIu64 "}", name, count, ns);
}

static void put_model_stats(sl_mm_model_t *m, void *arg) {
    sl_buf_t *b = arg;
    sl_model_stats_snapshot_t s;
    sl_model_stats_snapshot(sl_mm_model_stats(m), &s);
    if (b->data[b->len - 1] != '[') sl_buf_putc(b, ',');
    sl_buf_puts(b, "{\"name\":");
    put_str(b, sl_mm_model_name(m));
    sl_buf_puts(b, ",\"version\":");
    put_str(b, sl_mm_model_version(m));
    sl_buf_printf(b,
                  ",\"last_inference\":%" PRIu64 ",\"inference_count\":%" PRIu64
                  ",\"execution_count\":%" PRIu64 ",\"inference_stats\":{",
                  s.last_inference_ms, s.inference_count, s.execution_count);
    put_duration(b, "success", s.success_count, s.success_ns);
    sl_buf_putc(b, ',');
    put_duration(b, "fail", s.fail_count, s.fail_ns);
    sl_buf_putc(b, ',');
    put_duration(b, "queue", s.queue_count, s.queue_ns);
    sl_buf_putc(b, ',');
    /* Input copies and output splits are not timed apart from execute(): reported as zero. */
    put_duration(b, "compute_input", 0, 0);
    sl_buf_putc(b, ',');
    put_duration(b, "compute_infer", s.compute_count, s.compute_ns);
    sl_buf_putc(b, ',');
    put_duration(b, "compute_output", 0, 0);
    sl_buf_putc(b, ',');
    put_duration(b, "cache_hit", s.cache_hit_count, s.cache_hit_ns);
    sl_buf_putc(b, ',');
    put_duration(b, "cache_miss", s.cache_miss_count, s.cache_miss_ns);
    sl_buf_puts(b, "},\"batch_stats\":[");
    bool first = true;
    for (uint32_t size = 1; s.executions_by_size && size <= s.max_batch; size++) {
        if (s.executions_by_size[size] == 0) continue;
        sl_buf_printf(b, "%s{\"batch_size\":%" PRIu32 ",", first ? "" : ",", size);
        put_duration(b, "compute_infer", s.executions_by_size[size],
                     s.compute_ns_by_size ? s.compute_ns_by_size[size] : 0);
        sl_buf_putc(b, '}');
        first = false;
    }
    sl_buf_puts(b, "]}");
    sl_model_stats_snapshot_free(&s);
}

/* GET /v2/models/stats (every model), /v2/models/{m}/stats, /v2/models/{m}/versions/{v}/stats */
static void model_stats(sl_http_req_t *r, sl_mm_t *mm, const char *model, const char *version) {
    if (model) {
        sl_mm_model_t *m;
        sl_infer_error_t err;
        if (version) {
            if (sl_mm_acquire(mm, model, version, &m, &err) != SL_INFER_OK) {
                respond_infer_error(r, &err);
                return;
            }
            sl_mm_release(m);
        } else {
            char **v = sl_mm_versions(mm, model);
            if (!v) {
                sl_infer_error_set(&err, SL_INFER_NOT_FOUND, "unknown model '%s'", model);
                respond_infer_error(r, &err);
                return;
            }
            sl_mm_strv_free(v);
        }
    }
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"model_stats\":[");
    sl_mm_each(mm, model, version, put_model_stats, &b);
    sl_buf_puts(&b, "]}");
    respond_buf(r, 200, &b);
}

/* ---- infer ---- */

static void infer_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                       const sl_infer_error_t *err, void *arg) {
    sl_http_req_t *r = arg;
    if (!resp) {
        respond_infer_error(r, err);
        sl_infer_request_free(req);
        return;
    }
    sl_buf_t out = SL_BUF_INIT;
    sl_buf_reserve(&out, 1024); /* most responses fit: one allocation */
    size_t header_len;
    sl_oip_json_write_response(req, resp, &out, &header_len);
    const char *type = JSON_TYPE;
    if (header_len != out.len) {
        char v[24];
        snprintf(v, sizeof v, "%zu", header_len);
        sl_http_resp_header(r, "Inference-Header-Content-Length", v);
        type = "application/octet-stream";
    }
    sl_http_respond_take(r, 200, type, out.data, out.len);
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
}

/* The Inference-Header-Content-Length header: -1 when absent, -2 when malformed. */
static int64_t header_length(const sl_http_req_t *r) {
    sl_str_t v = sl_http_req_header(r, "Inference-Header-Content-Length");
    if (!v.ptr) return -1;
    while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t'))
        v.ptr++, v.len--;
    while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    if (v.len == 0 || v.len > 18) return -2;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return -2;
        n = n * 10 + (v.ptr[i] - '0');
    }
    return n;
}

static void handle_infer(sl_http_req_t *r, sl_mm_t *mm, const sl_oip_model_path_t *p) {
    int64_t header_len = header_length(r);
    if (header_len == -2) {
        respond_error(r, 400, "Inference-Header-Content-Length must be a non-negative integer");
        return;
    }
    sl_infer_request_t *req = sl_infer_request_new(sl_loop_current(), infer_done, r);
    req->model_name = sl_infer_request_strndup(req, p->model, strlen(p->model));
    if (p->version[0]) {
        req->model_version = sl_infer_request_strndup(req, p->version, strlen(p->version));
    }
    sl_infer_error_t err;
    if (sl_oip_json_parse_request(r->body, r->body_len, header_len, req, &err) != SL_INFER_OK) {
        sl_infer_request_free(req);
        respond_infer_error(r, &err);
        return;
    }
    sl_mm_infer(mm, req); /* answers through infer_done */
}

/* ---- /v2/models/... ---- */

static void handle_models(sl_http_req_t *r, void *ctx) {
    sl_mm_t *mm = ctx;
    sl_str_t rest = path_rest(r, "/v2/models/");
    bool post = sl_str_eq(r->method, "POST");
    if (sl_str_eq(rest, "stats")) {
        if (post) {
            respond_error(r, 405, "method not allowed: use GET for statistics");
            return;
        }
        model_stats(r, mm, NULL, NULL);
        return;
    }
    sl_oip_model_path_t p;
    if (!parse_model_path(r, rest, &p)) return;
    bool infer = sl_str_eq(p.action, "infer");
    if (post != infer) {
        respond_error(r, 405,
                      infer ? "method not allowed: use POST for inference"
                            : "method not allowed: use GET");
        return;
    }
    if (infer) {
        handle_infer(r, mm, &p);
        return;
    }
    const char *version = p.version[0] ? p.version : NULL;
    if (sl_str_eq(p.action, "stats")) {
        model_stats(r, mm, p.model, version);
        return;
    }
    sl_mm_model_t *m;
    sl_infer_error_t err;
    sl_infer_code_t code = sl_mm_acquire(mm, p.model, version, &m, &err);
    if (sl_str_eq(p.action, "ready")) {
        if (code == SL_INFER_OK) {
            sl_mm_release(m);
            respond_empty(r, 200);
        } else {
            respond_error(r, code == SL_INFER_NOT_FOUND ? 404 : 503, err.msg);
        }
        return;
    }
    if (code != SL_INFER_OK) {
        respond_infer_error(r, &err);
        return;
    }
    if (sl_str_eq(p.action, "config")) {
        sl_buf_t b = SL_BUF_INIT;
        sl_model_config_to_json(sl_mm_model_config(m), &b);
        respond_buf(r, 200, &b);
    } else {
        model_metadata(r, mm, m);
    }
    sl_mm_release(m);
}

/* ---- the repository extension ---- */

/* An optional JSON object body; answers 400 and returns false when it is malformed. *out is
 * NULL for an empty body. */
static bool optional_body(sl_http_req_t *r, cJSON **out) {
    *out = NULL;
    size_t n = r->body_len;
    const uint8_t *p = r->body;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == '\t'))
        n--;
    if (n == 0) return true;
    char jerr[160];
    if (sl_json_parse((const char *)p, r->body_len, out, jerr, sizeof jerr) != 0) {
        respond_error(r, 400, jerr);
        return false;
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        respond_error(r, 400, "the request must be a JSON object");
        return false;
    }
    return true;
}

static void handle_index(sl_http_req_t *r, void *ctx) {
    sl_mm_t *mm = ctx;
    cJSON *body;
    if (!optional_body(r, &body)) return;
    bool ready = false;
    if (body) {
        char jerr[128];
        int rc = sl_json_get_bool(body, "ready", &ready, jerr, sizeof jerr);
        cJSON_Delete(body);
        if (rc != 0 && rc != SL_ENOENT) {
            respond_error(r, 400, jerr);
            return;
        }
    }
    sl_mm_index_entry_t *e = NULL;
    size_t n = sl_mm_index(mm, ready, &e);
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        sl_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        put_str(&b, e[i].name);
        if (e[i].version) {
            sl_buf_puts(&b, ",\"version\":");
            put_str(&b, e[i].version);
        }
        sl_buf_puts(&b, ",\"state\":");
        put_str(&b, e[i].state ? e[i].state : "");
        sl_buf_puts(&b, ",\"reason\":");
        put_str(&b, e[i].reason ? e[i].reason : "");
        sl_buf_putc(&b, '}');
    }
    sl_buf_putc(&b, ']');
    sl_mm_index_free(e, n);
    respond_buf(r, 200, &b);
}

static void control_done(int status, const char *message, void *arg) {
    sl_http_req_t *r = arg;
    if (status == 0) {
        sl_http_respond(r, 200, JSON_TYPE, "{}", 2);
        return;
    }
    respond_error(r, status == SL_ENOENT ? 404 : 400,
                  message && message[0] ? message : sl_strerror(status));
}

/* POST /v2/repository/models/{m}/load and /unload. Parameters that would override the config
 * or the files (Triton's "config", "file:...") are refused: the repository is the source. */
static void handle_repository_model(sl_http_req_t *r, void *ctx) {
    sl_mm_t *mm = ctx;
    char model[SL_OIP_NAME_MAX + 1];
    bool load;
    const char *msg;
    int status =
        sl_oip_parse_repository_path(path_rest(r, "/v2/repository/models/"), model, &load, &msg);
    if (status) {
        respond_error(r, status, msg);
        return;
    }
    cJSON *body;
    if (!optional_body(r, &body)) return;
    if (body) {
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
        const char *bad = NULL;
        if (params && !cJSON_IsObject(params)) {
            bad = "field 'parameters' must be an object";
        } else if (params) {
            const cJSON *c;
            cJSON_ArrayForEach(c, params) {
                if (c->string &&
                    (strcmp(c->string, "config") == 0 || strncmp(c->string, "file:", 5) == 0)) {
                    bad = "parameters 'config' and 'file:' are not supported: edit the model "
                          "repository and load again";
                }
            }
        }
        cJSON_Delete(body);
        if (bad) {
            respond_error(r, 400, bad);
            return;
        }
    }
    if (load) {
        sl_mm_load(mm, model, sl_loop_current(), control_done, r);
    } else {
        sl_mm_unload(mm, model, sl_loop_current(), control_done, r);
    }
}

void sl_oip_rest_register(sl_http_server_t *http, sl_mm_t *mm) {
    sl_http_server_route(http, "GET", "/v2", handle_server_metadata, mm, true);
    sl_http_server_route(http, "GET", "/v2/health/live", handle_live, mm, false);
    sl_http_server_route(http, "GET", "/v2/health/ready", handle_ready, mm, false);
    sl_http_server_route(http, "GET", "/v2/models/*", handle_models, mm, true);
    sl_http_server_route(http, "POST", "/v2/models/*", handle_models, mm, true);
    sl_http_server_route(http, "POST", "/v2/repository/index", handle_index, mm, true);
    sl_http_server_route(http, "POST", "/v2/repository/models/*", handle_repository_model, mm,
                         true);
}
