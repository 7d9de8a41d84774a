/* Internal to the model manager: the state shared by manager.c (table, lookups, inference) and
 * manager_control.c (control thread: load, unload, poll, warm-up, shutdown). Not for other
 * components; they use manager.h. Every field marked "mu" is read and written under mm->mu. */
#ifndef SL_MANAGER_INTERNAL_H
#define SL_MANAGER_INTERNAL_H

#include "inference/backends.h"
#include "inference/cache.h"
#include "inference/manager.h"
#include "inference/repository.h"
#include "inference/scheduler.h"

#include <pthread.h>
#include <stdatomic.h>

/* A parsed config shared by the versions loaded from it. */
typedef struct sl_mm_cfgref {
    atomic_uint refs;
    sl_model_config_t cfg;
} sl_mm_cfgref_t;

typedef enum sl_mm_vstate {
    SL_MM_VS_LOADING = 0,
    SL_MM_VS_READY,
    SL_MM_VS_UNLOADING,
} sl_mm_vstate_t;

/* One version (the public sl_mm_model_t). Immutable once READY except refs, state (mu) and
 * next_retiring (mu). */
struct sl_mm_model {
    atomic_uint refs;
    sl_mm_t *mm;
    char *name, *version;
    uint64_t fingerprint; /* sl_repo_fingerprint(root, name, version) when loaded */
    sl_mm_vstate_t state; /* mu */
    sl_mm_cfgref_t *cfg;
    sl_manifest_t manifest;
    char *artifact_path;
    const sluice_backend_iface_t *be;
    void *model_state;
    void **instances;
    uint32_t n_instances;
    sl_model_stats_t *stats;
    sl_sched_t *sched;
    sl_resp_cache_t *cache;            /* NULL unless response_cache.enable */
    struct sl_mm_model *next_retiring; /* mu */
};

typedef struct sl_mm__failed {
    char *version;
    char *reason;
} sl_mm__failed_t;

/* One model directory. All fields mu. */
typedef struct sl_mm__model {
    char *name;
    bool at_startup;       /* present when the manager was created: counts for readiness */
    bool in_repo;          /* present at the last scan */
    bool unloaded;         /* unloaded through the API: polling leaves it alone until a load */
    bool loading_job;      /* a load of this model is running on the control thread */
    char *reason;          /* why the last load failed ("" when it did not) */
    sl_mm_model_t **ready; /* serving versions, newest first; the list holds one ref each */
    size_t n_ready;
    char **loading; /* versions being loaded now */
    size_t n_loading;
    sl_mm__failed_t *failed; /* versions whose last load failed */
    size_t n_failed;
    uint64_t fp_attempt; /* model fingerprint at the last load attempt (poll compares) */
} sl_mm__model_t;

typedef enum sl_mm_job_kind {
    SL_MM_JOB_LOAD = 0, /* (re)load name; force reloads unchanged versions too */
    SL_MM_JOB_UNLOAD,
    SL_MM_JOB_SCAN,    /* the startup load of every model, then each poll */
    SL_MM_JOB_DESTROY, /* free victim (its last reference is gone) */
} sl_mm_job_kind_t;

typedef struct sl_mm_job {
    sl_mm_job_kind_t kind;
    char *name;
    bool force;
    sl_loop_t *loop;
    sl_mm_control_cb cb;
    void *arg;
    sl_mm_model_t *victim;
    struct sl_mm_job *next;
} sl_mm_job_t;

struct sl_mm {
    char *root; /* NULL: no repository, nothing to serve */
    sl_backends_t *backends;
    uint32_t poll_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* CLOCK_MONOTONIC; jobs queued, stop, retiring list shrank */
    sl_mm__model_t **models;       /* mu; sorted by name */
    size_t n_models;               /* mu */
    sl_mm_job_t *jobs, *jobs_tail; /* mu */
    sl_mm_model_t *retiring;       /* mu: UNLOADING versions waiting for their last reference */
    bool started, stopping;        /* mu */
    pthread_t thread;
};

/* manager.c */
sl_mm__model_t *sl_mm__find_locked(sl_mm_t *mm, const char *name);
sl_mm__model_t *sl_mm__add_locked(sl_mm_t *mm, const char *name);
void sl_mm__remove_locked(sl_mm_t *mm, sl_mm__model_t *md);
void sl_mm__model_free(sl_mm__model_t *md);
void sl_mm__set_reason_locked(sl_mm__model_t *md, const char *reason);
void sl_mm__clear_failed_locked(sl_mm__model_t *md);
void sl_mm__retire_locked(sl_mm_t *mm, sl_mm_model_t *v);
void sl_mm__cfg_release(sl_mm_cfgref_t *c);
/* Frees a version whose last reference is gone: joins its scheduler, frees instances, model,
 * statistics and cache. Control thread (or sl_mm_free) only. */
void sl_mm__version_destroy(sl_mm_t *mm, sl_mm_model_t *v);

/* manager_control.c */
void sl_mm__push_job_locked(sl_mm_t *mm, sl_mm_job_t *j);

#endif
