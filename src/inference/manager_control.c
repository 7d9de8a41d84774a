/* Model control on the manager's control thread: the job queue (load, unload, scan/poll,
 * destroy), loading a version (manifest, sha256, backend model and instances, scheduler,
 * statistics, cache, warm-up), the atomic swap of a model's serving versions, and shutdown.
 * One job runs at a time, so control requests for a model are serialised. */
#include "inference/manager_internal.h"

#include "core/log.h"
#include "engine/npy.h"
#include "inference/batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP_MAX_BYTES (256u << 20)
#define CACHE_MAX_BYTES  (64u << 20)
#define FREE_WAIT_MS     5000

void sl_mm__push_job_locked(sl_mm_t *mm, sl_mm_job_t *j) {
    j->next = NULL;
    if (mm->jobs_tail)
        mm->jobs_tail->next = j;
    else
        mm->jobs = j;
    mm->jobs_tail = j;
    pthread_cond_broadcast(&mm->cv);
}

static sl_mm_job_t *pop_job_locked(sl_mm_t *mm) {
    sl_mm_job_t *j = mm->jobs;
    if (j) {
        mm->jobs = j->next;
        if (!mm->jobs) mm->jobs_tail = NULL;
    }
    return j;
}

/* ---- replies ---- */

typedef struct {
    sl_mm_control_cb cb;
    void *arg;
    int status;
    char *msg;
} reply_t;

static void reply_run(void *arg) {
    reply_t *r = arg;
    r->cb(r->status, r->msg, r->arg);
    free(r->msg);
    free(r);
}

static void reply(sl_mm_job_t *j, int status, const char *msg) {
    if (!j->cb) return;
    if (!j->loop) {
        j->cb(status, msg, j->arg);
        return;
    }
    reply_t *r = sl_malloc(sizeof *r);
    *r = (reply_t){.cb = j->cb, .arg = j->arg, .status = status, .msg = sl_strdup(msg)};
    size_t n = strlen(r->msg);
    while (n && r->msg[n - 1] == '\n')
        r->msg[--n] = '\0';
    if (sl_loop_post(j->loop, reply_run, r) != 0) {
        free(r->msg);
        free(r);
    }
}

/* ---- warm-up ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, ok;
    char msg[256];
} warm_wait_t;

static void warm_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                      const sl_infer_error_t *err, void *arg) {
    warm_wait_t *w = arg;
    bool ok = resp != NULL;
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
    pthread_mutex_lock(&w->mu);
    w->ok = ok;
    if (err) snprintf(w->msg, sizeof w->msg, "%s", err->msg);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static sluice_dtype_t npy_dtype(sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
        return SLUICE_DT_FP32;
    case SL_DT_DOUBLE:
        return SLUICE_DT_FP64;
    case SL_DT_INT64:
        return SLUICE_DT_INT64;
    case SL_DT_INT32:
        return SLUICE_DT_INT32;
    case SL_DT_BOOL:
        return SLUICE_DT_BOOL;
    case SL_DT_UINT8:
        return SLUICE_DT_UINT8;
    default:
        return SLUICE_DT_INVALID;
    }
}

/* Small deterministic values: zeros and ones for FP16/BF16 (whose bit patterns could be NaN),
 * 0..9 for integers, [0, 1) for floats. */
static void fill_random(sluice_dtype_t dt, uint8_t *p, int64_t numel, uint64_t *seed) {
    size_t es = sluice_dtype_size(dt);
    for (int64_t i = 0; i < numel; i++, p += es) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = *seed >> 33;
        switch (dt) {
        case SLUICE_DT_FP32: {
            float f = (float)(r & 0xffffff) / 16777216.0f;
            memcpy(p, &f, 4);
            break;
        }
        case SLUICE_DT_FP64: {
            double d = (double)(r & 0xffffff) / 16777216.0;
            memcpy(p, &d, 8);
            break;
        }
        case SLUICE_DT_FP16:
            p[0] = 0, p[1] = (r & 1) ? 0x3c : 0;
            break;
        case SLUICE_DT_BF16:
            p[0] = (r & 1) ? 0x80 : 0, p[1] = (r & 1) ? 0x3f : 0;
            break;
        case SLUICE_DT_BOOL:
            p[0] = r & 1;
            break;
        default:
            p[0] = (uint8_t)(r % 10);
            break; /* little-endian: the rest stays zero */
        }
    }
}

/* Fills input i of a warm-up request. Returns false with a message. */
static bool warm_input(sl_mm_t *mm, const sl_mm_model_t *v, const sl_warmup_t *wu, uint32_t i,
                       sl_infer_request_t *req, uint64_t *seed, sl_buf_t *err) {
    const sl_model_config_t *cfg = &v->cfg->cfg;
    const sluice_tensor_desc_t *d = &cfg->inputs[i];
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = d->name;
    in->dtype = d->dtype;
    if (wu->data_file[i]) {
        char *path = NULL;
        sl_buf_t p = SL_BUF_INIT;
        sl_buf_printf(&p, "%s/%s/%s", mm->root, v->name, wu->data_file[i]);
        path = p.data;
        sl_tensor_t t;
        sl_eng_error_t ee;
        memset(&t, 0, sizeof t);
        sl_eng_status_t st = sl_npy_read_file(path, WARMUP_MAX_BYTES, &t, &ee);
        free(path);
        if (st != SL_ENG_OK) {
            sl_buf_printf(err, "%s/%s: warm-up '%s': input '%s' from %s: %s", v->name, v->version,
                          wu->name, d->name, wu->data_file[i], ee.msg);
            return false;
        }
        in->dtype = npy_dtype(t.dtype);
        in->ndim = (uint32_t)t.ndim;
        memcpy(in->dims, t.dims, sizeof t.dims[0] * (size_t)t.ndim);
        in->byte_size = sl_tensor_nbytes(&t);
        void *data = sl_infer_request_alloc(req, in->byte_size ? in->byte_size : 1);
        memcpy(data, t.data, in->byte_size);
        in->data = data;
        free(t.data);
        return true;
    }
    uint32_t k = 0;
    if (cfg->max_batch_size > 0) in->dims[k++] = wu->batch_size;
    for (uint32_t j = 0; j < d->ndim; j++)
        in->dims[k++] = d->dims[j] < 0 ? 1 : d->dims[j];
    in->ndim = k;
    int64_t numel = sl_dims_numel(in->dims, in->ndim);
    size_t es = d->dtype == SLUICE_DT_BYTES ? 4 : sluice_dtype_size(d->dtype);
    if (numel < 0 || (uint64_t)numel > WARMUP_MAX_BYTES / (es ? es : 1)) {
        sl_buf_printf(err, "%s/%s: warm-up '%s': input '%s' would be larger than %u bytes", v->name,
                      v->version, wu->name, d->name, WARMUP_MAX_BYTES);
        return false;
    }
    in->byte_size = (uint64_t)numel * es;
    uint8_t *data = sl_infer_request_alloc(req, in->byte_size ? in->byte_size : 1); /* zeroed */
    /* BYTES elements stay empty strings (a zero length prefix each). */
    if (wu->random && d->dtype != SLUICE_DT_BYTES) fill_random(d->dtype, data, numel, seed);
    in->data = data;
    return true;
}

static bool warm_up(sl_mm_t *mm, sl_mm_model_t *v, sl_buf_t *err) {
    const sl_model_config_t *cfg = &v->cfg->cfg;
    uint64_t seed = 0x5eed;
    for (uint32_t k = 0; k < cfg->n_warmup; k++) {
        const sl_warmup_t *wu = &cfg->warmup[k];
        warm_wait_t w = {.done = false};
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        sl_infer_request_t *req = sl_infer_request_new(NULL, warm_done, &w);
        req->warmup = true;
        req->model_name = v->name;
        req->model_version = v->version;
        bool ok = true;
        for (uint32_t i = 0; i < cfg->n_inputs && ok; i++)
            ok = warm_input(mm, v, wu, i, req, &seed, err);
        sl_infer_error_t e;
        if (ok && sl_batch_validate(cfg, req, &e) != SL_INFER_OK) {
            sl_buf_printf(err, "%s/%s: warm-up '%s': %s", v->name, v->version, wu->name, e.msg);
            ok = false;
        }
        if (!ok) {
            sl_infer_request_free(req);
        } else {
            sl_sched_submit(v->sched, req);
            pthread_mutex_lock(&w.mu);
            while (!w.done)
                pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
            if (!w.ok) {
                sl_buf_printf(err, "%s/%s: warm-up '%s' failed: %s", v->name, v->version, wu->name,
                              w.msg);
                ok = false;
            }
        }
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
        if (!ok) return false;
    }
    return true;
}

/* ---- loading one version ---- */

/* Backend messages may name the artifact's absolute path: show the repository path instead. */
static void append_scrubbed(sl_buf_t *err, const char *msg, const char *abs, const char *shown) {
    size_t alen = abs ? strlen(abs) : 0;
    for (const char *s = msg; *s;) {
        const char *hit = alen ? strstr(s, abs) : NULL;
        if (!hit) {
            sl_buf_puts(err, s);
            break;
        }
        sl_buf_append(err, s, (size_t)(hit - s));
        sl_buf_puts(err, shown);
        s = hit + alen;
    }
}

static bool status_ok(sluice_status_t *st, const sl_mm_model_t *v, const char *what,
                      sl_buf_t *err) {
    if (!st) return true;
    char *shown = sl_repo_display_path(v->mm->root, v->name, v->version, v->manifest.artifact,
                                       (const char *)NULL);
    sl_buf_printf(err, "backend '%s' %s for %s/%s: ", v->cfg->cfg.backend, what, v->name,
                  v->version);
    append_scrubbed(err, sl_status_message(st), v->artifact_path, shown);
    free(shown);
    sl_status_free(st);
    return false;
}

static sl_mm_model_t *load_version(sl_mm_t *mm, const char *name, const char *version,
                                   sl_mm_cfgref_t *cr, uint64_t fp, sl_buf_t *err) {
    sl_mm_model_t *v = sl_calloc(1, sizeof *v);
    atomic_init(&v->refs, 1);
    v->mm = mm;
    v->name = sl_strdup(name);
    v->version = sl_strdup(version);
    v->fingerprint = fp;
    atomic_fetch_add(&cr->refs, 1);
    v->cfg = cr;
    const sl_model_config_t *cfg = &cr->cfg;
    uint64_t t0 = sl_now_ns();
    if (sl_repo_read_manifest(mm->root, name, version, &v->manifest, &v->artifact_path, err) ||
        sl_repo_verify_artifact(mm->root, name, version, &v->manifest, v->artifact_path, err)) {
        goto fail;
    }
    void *bstate = NULL;
    v->be = sl_backends_get(mm->backends, cfg->backend, &bstate, err);
    if (!v->be) goto fail;
    /* The version directory in the repository (the artifact itself may be a symlink). */
    sl_buf_t vd = SL_BUF_INIT;
    sl_buf_printf(&vd, "%s/%s/%s", mm->root, name, version);
    char *vdir = realpath(vd.data, NULL);
    sl_buf_free(&vd);
    if (!vdir) vdir = sl_strdup(v->artifact_path);
    sluice_model_desc_t desc = {
        .struct_size = sizeof desc,
        .name = name,
        .version = version,
        .artifact_path = v->artifact_path,
        .version_dir = vdir,
        .max_batch_size = cfg->max_batch_size,
        .n_inputs = cfg->n_inputs,
        .n_outputs = cfg->n_outputs,
        .inputs = cfg->inputs,
        .outputs = cfg->outputs,
        .n_params = cfg->n_params,
        .param_keys = (const char *const *)cfg->param_keys,
        .param_values = (const char *const *)cfg->param_values,
    };
    bool ok =
        status_ok(v->be->model_load(bstate, &desc, &v->model_state), v, "could not load", err);
    free(vdir);
    if (!ok) goto fail;
    v->instances = sl_calloc(cfg->instance_count, sizeof *v->instances);
    for (uint32_t i = 0; i < cfg->instance_count; i++) {
        sluice_instance_desc_t idesc = {.struct_size = sizeof idesc,
                                        .index = i,
                                        .device = cfg->instance_kind,
                                        .device_id = 0,
                                        .threads = cfg->instance_threads};
        if (!status_ok(v->be->instance_new(v->model_state, &idesc, &v->instances[i]), v,
                       "could not create an instance", err)) {
            goto fail;
        }
        v->n_instances = i + 1;
    }
    v->stats = sl_model_stats_new(name, version, cfg->max_batch_size ? cfg->max_batch_size : 1);
    char serr[256] = "";
    sl_sched_cfg_t sc = {.model_name = v->name,
                         .version = v->version,
                         .cfg = cfg,
                         .be = v->be,
                         .instances = v->instances,
                         .n_instances = v->n_instances,
                         .stats = v->stats};
    v->sched = sl_sched_new(&sc, serr, sizeof serr);
    if (!v->sched) {
        sl_buf_printf(err, "%s/%s: could not start the scheduler: %s", name, version, serr);
        goto fail;
    }
    if (cfg->response_cache)
        v->cache = sl_resp_cache_new(cfg->response_cache_entries, CACHE_MAX_BYTES);
    if (!warm_up(mm, v, err)) goto fail;
    SL_INFO("inference", "model version loaded", SL_LF_S("model", name),
            SL_LF_S("version", version), SL_LF_S("backend", cfg->backend),
            SL_LF_U("instances", v->n_instances), SL_LF_U("warmup", cfg->n_warmup),
            SL_LF_D("load_ms", (double)(sl_now_ns() - t0) / 1e6));
    return v;
fail:
    sl_mm__version_destroy(mm, v);
    return NULL;
}

/* ---- loading a model: select, load, swap ---- */

static void strv_add(char ***v, size_t *n, const char *s) {
    *v = sl_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = sl_strdup(s);
}

static void strv_clear(char ***v, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static int load_model(sl_mm_t *mm, const char *name, bool force, sl_buf_t *msg) {
    uint64_t fp_model = sl_repo_fingerprint(mm->root, name, NULL);
    sl_buf_t err = SL_BUF_INIT;
    sl_mm_cfgref_t *cr = sl_calloc(1, sizeof *cr);
    atomic_init(&cr->refs, 1);
    char **avail = NULL, **sel = NULL;
    int rc = sl_repo_read_config(mm->root, name, &cr->cfg, &err);
    if (rc == SL_ENOENT) {
        /* Not (or no longer) in the repository: nothing to record. */
        sl_buf_printf(msg, "model '%s' is not in the repository", name);
        sl_mm__cfg_release(cr);
        sl_buf_free(&err);
        return rc;
    }
    if (rc == 0) rc = sl_repo_list_versions(mm->root, name, &avail, &err);
    if (rc == 0) {
        sel = sl_repo_select_versions(&cr->cfg, avail, &err);
        if (err.len) {
            /* Listed versions that are missing: worth a warning, not a failure. */
            SL_WARN("inference", "version policy names missing versions", SL_LF_S("model", name),
                    SL_LF_S("detail", err.data));
            sl_buf_reset(&err);
        }
        if (!sel[0]) {
            sl_buf_printf(&err, "model '%s' has no version directory its version_policy selects\n",
                          name);
            rc = SL_EINVAL;
        }
    }
    pthread_mutex_lock(&mm->mu);
    sl_mm__model_t *md = sl_mm__add_locked(mm, name);
    md->loading_job = true;
    md->fp_attempt = fp_model;
    sl_mm__clear_failed_locked(md);
    pthread_mutex_unlock(&mm->mu);

    size_t n_sel = 0;
    while (sel && sel[n_sel])
        n_sel++;
    sl_mm_model_t **fresh = sl_calloc(n_sel + 1, sizeof *fresh);
    size_t n_fresh = 0, n_failed = 0;
    for (size_t i = 0; rc == 0 && i < n_sel; i++) {
        uint64_t vfp = sl_repo_fingerprint(mm->root, name, sel[i]);
        sl_mm_model_t *keep = NULL;
        pthread_mutex_lock(&mm->mu);
        for (size_t k = 0; k < md->n_ready && !force; k++) {
            sl_mm_model_t *r = md->ready[k];
            if (!strcmp(r->version, sel[i]) && r->fingerprint == vfp) keep = r;
        }
        if (keep) atomic_fetch_add(&keep->refs, 1);
        if (!keep) strv_add(&md->loading, &md->n_loading, sel[i]);
        pthread_mutex_unlock(&mm->mu);
        if (keep) {
            fresh[n_fresh++] = keep;
            continue;
        }
        size_t mark = err.len;
        sl_mm_model_t *v = load_version(mm, name, sel[i], cr, vfp, &err);
        if (v) {
            fresh[n_fresh++] = v;
        } else {
            n_failed++;
            if (err.len == mark || err.data[err.len - 1] != '\n') sl_buf_putc(&err, '\n');
            pthread_mutex_lock(&mm->mu);
            md->failed = sl_realloc(md->failed, (md->n_failed + 1) * sizeof *md->failed);
            md->failed[md->n_failed].version = sl_strdup(sel[i]);
            md->failed[md->n_failed++].reason = sl_strdup(err.data + mark);
            pthread_mutex_unlock(&mm->mu);
        }
    }
    if (rc == 0 && n_failed) rc = SL_EINVAL;

    /* The swap: all or nothing while something serves; a first load serves what loaded. */
    pthread_mutex_lock(&mm->mu);
    strv_clear(&md->loading, &md->n_loading);
    md->loading_job = false;
    md->unloaded = false;
    bool swap = n_fresh > 0 && (rc == 0 || md->n_ready == 0);
    bool kept_old = !swap && md->n_ready > 0;
    sl_mm_model_t **drop = swap ? md->ready : fresh;
    size_t n_drop = swap ? md->n_ready : n_fresh;
    if (swap) {
        for (size_t i = 0; i < n_fresh; i++)
            fresh[i]->state = SL_MM_VS_READY;
        md->ready = fresh;
        md->n_ready = n_fresh;
        fresh = NULL;
    }
    /* Versions leaving service (or never entering it) retire; every one loses the reference
     * of the list it was in (reused ones still hold the new list's). */
    for (size_t i = 0; i < n_drop; i++) {
        bool still = false;
        for (size_t k = 0; k < md->n_ready; k++)
            still |= md->ready[k] == drop[i];
        if (!still) sl_mm__retire_locked(mm, drop[i]);
    }
    sl_mm__set_reason_locked(md, rc == 0 ? "" : err.data);
    pthread_mutex_unlock(&mm->mu);
    for (size_t i = 0; i < n_drop; i++)
        sl_mm_release(drop[i]);
    free(drop); /* the old list, or fresh when it never served */

    if (rc == 0) {
        sl_buf_printf(msg, "model '%s' loaded", name);
    } else {
        sl_buf_puts(msg, err.data);
        SL_WARN("inference",
                kept_old ? "model reload failed, previous versions keep serving"
                         : "model load failed",
                SL_LF_S("model", name), SL_LF_S("reason", err.data));
    }
    sl_repo_strv_free(avail);
    sl_repo_strv_free(sel);
    sl_mm__cfg_release(cr);
    sl_buf_free(&err);
    return rc;
}

/* Retires every serving version of md (under mu); the caller releases *out[0..n). */
static size_t unload_locked(sl_mm_t *mm, sl_mm__model_t *md, sl_mm_model_t ***out) {
    *out = md->ready;
    size_t n = md->n_ready;
    for (size_t i = 0; i < n; i++)
        sl_mm__retire_locked(mm, md->ready[i]);
    md->ready = NULL;
    md->n_ready = 0;
    return n;
}

static void release_all(sl_mm_model_t **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        sl_mm_release(v[i]);
    free(v);
}

static int unload_model(sl_mm_t *mm, const char *name, sl_buf_t *msg) {
    pthread_mutex_lock(&mm->mu);
    sl_mm__model_t *md = sl_mm__find_locked(mm, name);
    if (!md) {
        pthread_mutex_unlock(&mm->mu);
        sl_buf_printf(msg, "unknown model '%s'", name);
        return SL_ENOENT;
    }
    sl_mm_model_t **v;
    size_t n = unload_locked(mm, md, &v);
    md->unloaded = true;
    sl_mm__clear_failed_locked(md);
    sl_mm__set_reason_locked(md, "unloaded");
    pthread_mutex_unlock(&mm->mu);
    release_all(v, n);
    SL_INFO("inference", "model unloaded", SL_LF_S("model", name), SL_LF_U("versions", n));
    sl_buf_printf(msg, "model '%s' unloaded", name);
    return 0;
}

/* The startup load and every poll: new models load, removed ones unload, changed ones reload. */
static void scan(sl_mm_t *mm) {
    if (!mm->root) return;
    char **names = NULL;
    sl_buf_t err = SL_BUF_INIT;
    if (sl_repo_list_models(mm->root, &names, &err) != 0) {
        SL_WARN("inference", "cannot scan the model repository", SL_LF_S("reason", err.data));
        sl_buf_free(&err);
        return;
    }
    sl_buf_free(&err);
    pthread_mutex_lock(&mm->mu);
    for (size_t i = 0; i < mm->n_models; i++)
        mm->models[i]->in_repo = false;
    for (size_t i = 0; names[i]; i++)
        sl_mm__add_locked(mm, names[i])->in_repo = true;
    /* Models gone from disk: unload and forget them. */
    for (size_t i = mm->n_models; i-- > 0;) {
        sl_mm__model_t *md = mm->models[i];
        if (md->in_repo) continue;
        sl_mm_model_t **v;
        size_t n = unload_locked(mm, md, &v);
        SL_INFO("inference", "model removed from the repository", SL_LF_S("model", md->name));
        sl_mm__remove_locked(mm, md);
        pthread_mutex_unlock(&mm->mu);
        release_all(v, n);
        pthread_mutex_lock(&mm->mu);
    }
    pthread_mutex_unlock(&mm->mu);
    for (size_t i = 0; names[i]; i++) {
        pthread_mutex_lock(&mm->mu);
        sl_mm__model_t *md = sl_mm__find_locked(mm, names[i]);
        bool skip = !md || md->unloaded || mm->stopping;
        uint64_t last = md ? md->fp_attempt : 0;
        pthread_mutex_unlock(&mm->mu);
        if (skip || sl_repo_fingerprint(mm->root, names[i], NULL) == last) continue;
        sl_buf_t msg = SL_BUF_INIT;
        load_model(mm, names[i], false, &msg);
        sl_buf_free(&msg);
    }
    sl_repo_strv_free(names);
}

static void run_job(sl_mm_t *mm, sl_mm_job_t *j, bool stopping) {
    sl_buf_t msg = SL_BUF_INIT;
    int rc = 0;
    switch (j->kind) {
    case SL_MM_JOB_DESTROY:
        sl_mm__version_destroy(mm, j->victim);
        break;
    case SL_MM_JOB_SCAN:
        if (!stopping) scan(mm);
        break;
    case SL_MM_JOB_LOAD:
        if (stopping) {
            rc = SL_ECANCELED;
            sl_buf_puts(&msg, "the server is shutting down");
        } else if (!mm->root || !sl_repo_name_ok(j->name)) {
            rc = SL_ENOENT;
            sl_buf_printf(&msg, "model '%.64s' is not in the repository", j->name);
        } else {
            rc = load_model(mm, j->name, j->force, &msg);
        }
        reply(j, rc, msg.data ? msg.data : "");
        break;
    case SL_MM_JOB_UNLOAD:
        if (stopping) {
            rc = SL_ECANCELED;
            sl_buf_puts(&msg, "the server is shutting down");
        } else {
            rc = unload_model(mm, j->name, &msg);
        }
        reply(j, rc, msg.data ? msg.data : "");
        break;
    }
    sl_buf_free(&msg);
    free(j->name);
    free(j);
}

static void deadline_after(struct timespec *ts, uint32_t ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *control_main(void *arg) {
    sl_mm_t *mm = arg;
    struct timespec next_poll;
    deadline_after(&next_poll, mm->poll_ms);
    pthread_mutex_lock(&mm->mu);
    for (;;) {
        while (!mm->jobs && !mm->stopping) {
            if (!mm->poll_ms) {
                pthread_cond_wait(&mm->cv, &mm->mu);
            } else if (pthread_cond_timedwait(&mm->cv, &mm->mu, &next_poll) == ETIMEDOUT) {
                sl_mm_job_t *j = sl_calloc(1, sizeof *j);
                j->kind = SL_MM_JOB_SCAN;
                sl_mm__push_job_locked(mm, j);
                deadline_after(&next_poll, mm->poll_ms);
            }
        }
        sl_mm_job_t *j = pop_job_locked(mm);
        if (!j) break; /* stopping and nothing queued */
        bool stopping = mm->stopping;
        pthread_mutex_unlock(&mm->mu);
        run_job(mm, j, stopping);
        pthread_mutex_lock(&mm->mu);
    }
    pthread_mutex_unlock(&mm->mu);
    return NULL;
}

/* ---- public control ---- */

static void push(sl_mm_t *mm, sl_mm_job_kind_t kind, const char *name, sl_loop_t *loop,
                 sl_mm_control_cb cb, void *arg) {
    sl_mm_job_t *j = sl_calloc(1, sizeof *j);
    j->kind = kind;
    j->name = name ? sl_strdup(name) : NULL;
    j->force = true;
    j->loop = loop;
    j->cb = cb;
    j->arg = arg;
    pthread_mutex_lock(&mm->mu);
    sl_mm__push_job_locked(mm, j);
    pthread_mutex_unlock(&mm->mu);
}

void sl_mm_start(sl_mm_t *mm) {
    pthread_mutex_lock(&mm->mu);
    bool started = mm->started;
    mm->started = true;
    pthread_mutex_unlock(&mm->mu);
    if (started) return;
    push(mm, SL_MM_JOB_SCAN, NULL, NULL, NULL, NULL);
    if (pthread_create(&mm->thread, NULL, control_main, mm) != 0) {
        SL_ASSERT(!"cannot start the model manager's control thread");
    }
}

void sl_mm_load(sl_mm_t *mm, const char *name, sl_loop_t *loop, sl_mm_control_cb cb, void *arg) {
    push(mm, SL_MM_JOB_LOAD, name ? name : "", loop, cb, arg);
}

void sl_mm_unload(sl_mm_t *mm, const char *name, sl_loop_t *loop, sl_mm_control_cb cb, void *arg) {
    push(mm, SL_MM_JOB_UNLOAD, name ? name : "", loop, cb, arg);
}

/* Runs queued jobs on the calling thread (after the control thread has stopped). */
static void drain_jobs(sl_mm_t *mm) {
    pthread_mutex_lock(&mm->mu);
    for (sl_mm_job_t *j; (j = pop_job_locked(mm));) {
        pthread_mutex_unlock(&mm->mu);
        run_job(mm, j, true);
        pthread_mutex_lock(&mm->mu);
    }
    pthread_mutex_unlock(&mm->mu);
}

void sl_mm_free(sl_mm_t *mm) {
    if (!mm) return;
    pthread_mutex_lock(&mm->mu);
    mm->stopping = true;
    bool started = mm->started;
    pthread_cond_broadcast(&mm->cv);
    pthread_mutex_unlock(&mm->mu);
    if (started) pthread_join(mm->thread, NULL);
    /* Unload everything; versions whose requests are still in flight go when those finish. */
    pthread_mutex_lock(&mm->mu);
    for (size_t i = 0; i < mm->n_models; i++) {
        sl_mm_model_t **v;
        size_t n = unload_locked(mm, mm->models[i], &v);
        pthread_mutex_unlock(&mm->mu);
        release_all(v, n);
        pthread_mutex_lock(&mm->mu);
    }
    pthread_mutex_unlock(&mm->mu);
    struct timespec deadline;
    deadline_after(&deadline, FREE_WAIT_MS);
    for (;;) {
        drain_jobs(mm);
        pthread_mutex_lock(&mm->mu);
        bool timed_out = false;
        while (mm->retiring && !mm->jobs && !timed_out)
            timed_out = pthread_cond_timedwait(&mm->cv, &mm->mu, &deadline) == ETIMEDOUT;
        bool done = !mm->retiring && !mm->jobs;
        sl_mm_model_t *stuck = timed_out && !mm->jobs ? mm->retiring : NULL;
        pthread_mutex_unlock(&mm->mu);
        if (done) break;
        if (stuck) {
            /* Requests whose I/O loop stopped never complete through us: free anyway, and
             * make sure no late release can reach zero again. */
            atomic_store(&stuck->refs, UINT32_MAX / 2);
            SL_WARN("inference", "freeing a model version with requests still referencing it",
                    SL_LF_S("model", stuck->name), SL_LF_S("version", stuck->version));
            sl_mm__version_destroy(mm, stuck);
        }
    }
    for (size_t i = 0; i < mm->n_models; i++)
        sl_mm__model_free(mm->models[i]);
    free(mm->models);
    sl_backends_free(mm->backends);
    pthread_cond_destroy(&mm->cv);
    pthread_mutex_destroy(&mm->mu);
    free(mm->root);
    free(mm);
}
