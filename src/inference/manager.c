/* The model manager: the table of models and their serving versions, lookups and the inference
 * entry point (I/O threads), and the version lifecycle. Loading, reloading, unloading and
 * polling run on one control thread (manager_control.c); this file holds the shared state.
 *
 * Locking: one mutex (mm->mu) guards the model table, each model's lists and every version's
 * state; it is held only for list edits and lookups, never across disk, backend or scheduler
 * work. A version is reference-counted: the model's list holds one reference while it serves,
 * every in-flight request one more. The last release hands the version to the control thread,
 * which frees it (the scheduler's threads are joined there, never on a thread of their own). */
#include "inference/manager_internal.h"

#include "core/log.h"
#include "inference/batch.h"

#include <stdlib.h>
#include <string.h>

/* ---- versions ---- */

void sl_mm__cfg_release(sl_mm_cfgref_t *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        sl_model_config_free(&c->cfg);
        free(c);
    }
}

void sl_mm__version_destroy(sl_mm_t *mm, sl_mm_model_t *v) {
    pthread_mutex_lock(&mm->mu);
    sl_mm_model_t **pp = &mm->retiring;
    while (*pp && *pp != v)
        pp = &(*pp)->next_retiring;
    if (*pp) *pp = v->next_retiring;
    pthread_cond_broadcast(&mm->cv);
    pthread_mutex_unlock(&mm->mu);
    if (v->sched) sl_sched_free(v->sched);
    for (uint32_t i = 0; i < v->n_instances; i++) {
        if (v->instances[i] && v->be->instance_free) v->be->instance_free(v->instances[i]);
    }
    free(v->instances);
    if (v->model_state) v->be->model_unload(v->model_state);
    if (v->stats) sl_model_stats_free(v->stats);
    if (v->cache) sl_resp_cache_free(v->cache);
    sl_manifest_free(&v->manifest);
    sl_mm__cfg_release(v->cfg);
    free(v->artifact_path);
    free(v->name);
    free(v->version);
    free(v);
}

void sl_mm_release(sl_mm_model_t *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    /* The last reference: free it on the control thread (this may be an instance thread of the
     * version itself, which must not join its own scheduler). */
    sl_mm_t *mm = m->mm;
    sl_mm_job_t *j = sl_calloc(1, sizeof *j);
    j->kind = SL_MM_JOB_DESTROY;
    j->victim = m;
    pthread_mutex_lock(&mm->mu);
    sl_mm__push_job_locked(mm, j);
    pthread_mutex_unlock(&mm->mu);
}

/* Moves v (under mu) to the retiring list: no new lookups find it. */
void sl_mm__retire_locked(sl_mm_t *mm, sl_mm_model_t *v) {
    v->state = SL_MM_VS_UNLOADING;
    v->next_retiring = mm->retiring;
    mm->retiring = v;
}

/* ---- the model table ---- */

sl_mm__model_t *sl_mm__find_locked(sl_mm_t *mm, const char *name) {
    for (size_t i = 0; i < mm->n_models; i++) {
        if (strcmp(mm->models[i]->name, name) == 0) return mm->models[i];
    }
    return NULL;
}

static int cmp_model(const void *a, const void *b) {
    return strcmp((*(sl_mm__model_t *const *)a)->name, (*(sl_mm__model_t *const *)b)->name);
}

sl_mm__model_t *sl_mm__add_locked(sl_mm_t *mm, const char *name) {
    sl_mm__model_t *md = sl_mm__find_locked(mm, name);
    if (md) return md;
    md = sl_calloc(1, sizeof *md);
    md->name = sl_strdup(name);
    md->reason = sl_strdup("");
    md->in_repo = true;
    mm->models = sl_realloc(mm->models, (mm->n_models + 1) * sizeof *mm->models);
    mm->models[mm->n_models++] = md;
    qsort(mm->models, mm->n_models, sizeof *mm->models, cmp_model);
    return md;
}

void sl_mm__set_reason_locked(sl_mm__model_t *md, const char *reason) {
    free(md->reason);
    md->reason = sl_strdup(reason ? reason : "");
}

void sl_mm__clear_failed_locked(sl_mm__model_t *md) {
    for (size_t i = 0; i < md->n_failed; i++) {
        free(md->failed[i].version);
        free(md->failed[i].reason);
    }
    free(md->failed);
    md->failed = NULL;
    md->n_failed = 0;
}

void sl_mm__model_free(sl_mm__model_t *md) {
    sl_mm__clear_failed_locked(md);
    for (size_t i = 0; i < md->n_loading; i++)
        free(md->loading[i]);
    free(md->loading);
    free(md->ready);
    free(md->reason);
    free(md->name);
    free(md);
}

void sl_mm__remove_locked(sl_mm_t *mm, sl_mm__model_t *md) {
    for (size_t i = 0; i < mm->n_models; i++) {
        if (mm->models[i] != md) continue;
        memmove(&mm->models[i], &mm->models[i + 1], (mm->n_models - i - 1) * sizeof *mm->models);
        mm->n_models--;
        sl_mm__model_free(md);
        return;
    }
}

/* ---- creation ---- */

sl_mm_t *sl_mm_new(const sl_mm_opts_t *opts, sl_buf_t *err) {
    char **names = NULL;
    if (opts->repository && sl_repo_list_models(opts->repository, &names, err) != 0) return NULL;
    sl_mm_t *mm = sl_calloc(1, sizeof *mm);
    mm->root = opts->repository ? sl_strdup(opts->repository) : NULL;
    mm->backends = sl_backends_new(opts->backend_dir);
    mm->poll_ms = opts->poll_interval_ms;
    pthread_mutex_init(&mm->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mm->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; names && names[i]; i++) {
        sl_mm__model_t *md = sl_mm__add_locked(mm, names[i]);
        md->at_startup = true;
        /* Read the config now so that a broken one is visible before anything loads. */
        sl_model_config_t cfg;
        sl_buf_t e = SL_BUF_INIT;
        if (sl_repo_read_config(mm->root, names[i], &cfg, &e) == 0) {
            sl_model_config_free(&cfg);
        } else {
            sl_mm__set_reason_locked(md, e.data);
            SL_WARN("inference", "model config is invalid", SL_LF_S("model", names[i]),
                    SL_LF_S("reason", e.data));
        }
        sl_buf_free(&e);
    }
    sl_repo_strv_free(names);
    return mm;
}

/* ---- lookups ---- */

static bool version_is(const sl_mm_model_t *v, const char *version) {
    return strcmp(v->version, version) == 0;
}

sl_infer_code_t sl_mm_acquire(sl_mm_t *mm, const char *name, const char *version,
                              sl_mm_model_t **out, sl_infer_error_t *err) {
    *out = NULL;
    if (!name) name = "";
    pthread_mutex_lock(&mm->mu);
    sl_mm__model_t *md = sl_mm__find_locked(mm, name);
    sl_infer_code_t code = SL_INFER_OK;
    if (!md) {
        code = sl_infer_error_set(err, SL_INFER_NOT_FOUND, "unknown model '%.64s'", name);
    } else if (!version || !version[0]) {
        if (md->n_ready) {
            *out = md->ready[0];
        } else {
            code = sl_infer_error_set(err, SL_INFER_UNAVAILABLE, "model '%.64s' is not ready (%s)",
                                      name,
                                      md->loading_job ? "loading"
                                      : md->reason[0] ? "unavailable, see the repository index"
                                                      : "no version loaded");
        }
    } else {
        for (size_t i = 0; i < md->n_ready && !*out; i++) {
            if (version_is(md->ready[i], version)) *out = md->ready[i];
        }
        if (!*out) {
            bool known = false;
            for (size_t i = 0; i < md->n_loading; i++)
                known |= strcmp(md->loading[i], version) == 0;
            for (sl_mm_model_t *r = mm->retiring; r; r = r->next_retiring)
                known |= !strcmp(r->name, name) && version_is(r, version);
            for (size_t i = 0; i < md->n_failed; i++)
                known |= strcmp(md->failed[i].version, version) == 0;
            if (known) {
                code = sl_infer_error_set(err, SL_INFER_UNAVAILABLE,
                                          "version '%.64s' of model '%.64s' is not ready", version,
                                          name);
            } else {
                code =
                    sl_infer_error_set(err, SL_INFER_NOT_FOUND,
                                       "unknown version '%.64s' of model '%.64s'", version, name);
            }
        }
    }
    if (*out) atomic_fetch_add(&(*out)->refs, 1);
    pthread_mutex_unlock(&mm->mu);
    return code;
}

const char *sl_mm_model_name(const sl_mm_model_t *m) {
    return m->name;
}
const char *sl_mm_model_version(const sl_mm_model_t *m) {
    return m->version;
}
const sl_model_config_t *sl_mm_model_config(const sl_mm_model_t *m) {
    return &m->cfg->cfg;
}
const sl_manifest_t *sl_mm_model_manifest(const sl_mm_model_t *m) {
    return &m->manifest;
}
sl_model_stats_t *sl_mm_model_stats(const sl_mm_model_t *m) {
    return m->stats;
}

char **sl_mm_versions(sl_mm_t *mm, const char *name) {
    pthread_mutex_lock(&mm->mu);
    sl_mm__model_t *md = sl_mm__find_locked(mm, name);
    char **v = NULL;
    if (md) {
        v = sl_calloc(md->n_ready + 1, sizeof *v);
        for (size_t i = 0; i < md->n_ready; i++)
            v[i] = sl_strdup(md->ready[i]->version);
    }
    pthread_mutex_unlock(&mm->mu);
    return v;
}

void sl_mm_strv_free(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

bool sl_mm_ready(sl_mm_t *mm) {
    pthread_mutex_lock(&mm->mu);
    bool ready = true;
    for (size_t i = 0; i < mm->n_models && ready; i++) {
        const sl_mm__model_t *md = mm->models[i];
        if (md->at_startup && md->in_repo && !md->unloaded && md->n_ready == 0) ready = false;
    }
    pthread_mutex_unlock(&mm->mu);
    return ready;
}

size_t sl_mm_each(sl_mm_t *mm, const char *name, const char *version,
                  void (*fn)(sl_mm_model_t *m, void *arg), void *arg) {
    pthread_mutex_lock(&mm->mu);
    size_t n = 0, cap = 0;
    sl_mm_model_t **list = NULL;
    for (size_t i = 0; i < mm->n_models; i++) {
        sl_mm__model_t *md = mm->models[i];
        if (name && strcmp(md->name, name) != 0) continue;
        for (size_t k = 0; k < md->n_ready; k++) {
            sl_mm_model_t *v = md->ready[k];
            if (version && !version_is(v, version)) continue;
            if (n == cap) list = sl_realloc(list, (cap = cap ? 2 * cap : 8) * sizeof *list);
            atomic_fetch_add(&v->refs, 1);
            list[n++] = v;
        }
    }
    pthread_mutex_unlock(&mm->mu);
    for (size_t i = 0; i < n; i++) {
        fn(list[i], arg);
        sl_mm_release(list[i]);
    }
    free(list);
    return n;
}

/* ---- the repository index ---- */

static void index_add(sl_mm_index_entry_t **out, size_t *n, size_t *cap, const char *name,
                      const char *version, const char *state, const char *reason) {
    if (*n == *cap) *out = sl_realloc(*out, (*cap = *cap ? 2 * *cap : 16) * sizeof **out);
    sl_mm_index_entry_t *e = &(*out)[(*n)++];
    e->name = sl_strdup(name);
    e->version = version ? sl_strdup(version) : NULL;
    e->state = state;
    e->reason = sl_strdup(reason ? reason : "");
    /* Reasons are one line each in the index; drop a trailing newline. */
    size_t len = strlen(e->reason);
    while (len && e->reason[len - 1] == '\n')
        e->reason[--len] = '\0';
}

size_t sl_mm_index(sl_mm_t *mm, bool ready_only, sl_mm_index_entry_t **out) {
    size_t n = 0, cap = 0;
    *out = NULL;
    pthread_mutex_lock(&mm->mu);
    for (size_t i = 0; i < mm->n_models; i++) {
        const sl_mm__model_t *md = mm->models[i];
        for (size_t k = 0; k < md->n_ready; k++) {
            index_add(out, &n, &cap, md->name, md->ready[k]->version, "READY", md->reason);
        }
        if (ready_only) continue;
        size_t before = n;
        for (size_t k = 0; k < md->n_loading; k++)
            index_add(out, &n, &cap, md->name, md->loading[k], "LOADING", "");
        for (sl_mm_model_t *r = mm->retiring; r; r = r->next_retiring) {
            if (strcmp(r->name, md->name) == 0) {
                index_add(out, &n, &cap, md->name, r->version, "UNLOADING", "");
            }
        }
        for (size_t k = 0; k < md->n_failed; k++) {
            /* A failed reload of a version that still serves shows once, as READY + reason. */
            bool serving = false;
            for (size_t r = 0; r < md->n_ready; r++)
                serving |= version_is(md->ready[r], md->failed[k].version);
            if (serving) continue;
            index_add(out, &n, &cap, md->name, md->failed[k].version, "UNAVAILABLE",
                      md->failed[k].reason);
        }
        if (md->n_ready == 0 && n == before) {
            index_add(out, &n, &cap, md->name, NULL, md->loading_job ? "LOADING" : "UNAVAILABLE",
                      md->reason[0] || md->loading_job ? md->reason : "not loaded");
        }
    }
    pthread_mutex_unlock(&mm->mu);
    return n;
}

void sl_mm_index_free(sl_mm_index_entry_t *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].version);
        free(e[i].reason);
    }
    free(e);
}

/* ---- inference ---- */

typedef struct {
    sl_infer_done_cb done;
    void *arg;
    sl_mm_model_t *m;
    bool has_key;
    sl_resp_cache_key_t key;
} infer_wrap_t;

/* Every request that found its version completes here first: statistics, the response cache,
 * the version's reference, then the front end's callback. */
static void infer_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                       const sl_infer_error_t *err, void *arg) {
    infer_wrap_t *w = arg;
    sl_mm_model_t *m = w->m;
    sl_model_stats_request(m->stats, resp != NULL, sl_now_ns() - req->t_received_ns);
    if (w->has_key) {
        if (resp && !resp->cached) sl_resp_cache_put(m->cache, &w->key, resp);
        sl_resp_cache_key_free(&w->key);
    }
    req->done = w->done;
    req->done_arg = w->arg;
    sl_mm_release(m);
    req->done(req, resp, err, req->done_arg);
}

void sl_mm_infer(sl_mm_t *mm, sl_infer_request_t *req) {
    sl_infer_error_t err;
    sl_mm_model_t *m = NULL;
    if (sl_mm_acquire(mm, req->model_name, req->model_version, &m, &err) != SL_INFER_OK) {
        sl_infer_request_complete(req, NULL, &err);
        return;
    }
    infer_wrap_t *w = sl_infer_request_alloc(req, sizeof *w);
    w->done = req->done;
    w->arg = req->done_arg;
    w->m = m;
    req->done = infer_done;
    req->done_arg = w;
    const sl_model_config_t *cfg = &m->cfg->cfg;
    if (sl_batch_validate(cfg, req, &err) != SL_INFER_OK) {
        sl_infer_request_complete(req, NULL, &err);
        return;
    }
    if (m->cache) {
        uint64_t t0 = sl_now_ns();
        sl_resp_cache_key_make(m->version, req, &w->key);
        w->has_key = true;
        sl_infer_response_t *hit = sl_resp_cache_get(m->cache, &w->key);
        sl_model_stats_cache(m->stats, hit != NULL, sl_now_ns() - t0);
        if (hit) {
            sl_infer_request_complete(req, hit, NULL);
            return;
        }
    }
    sl_sched_submit(m->sched, req);
}
