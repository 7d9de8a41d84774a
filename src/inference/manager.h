/* The model manager: the repository on disk, the versions loaded from it (each with its backend
 * model, instances, scheduler, statistics and optional response cache), their states, and
 * model control (load, unload, reload, poll). The REST and gRPC front ends only talk to this.
 *
 * Lifecycle of a version: LOADING (verify sha256, backend model_load, instances, warm-up) ->
 * READY -> UNLOADING (no new requests; queued ones finish) -> gone. A reload loads the new
 * version(s) next to the serving ones and swaps only when they are READY; a failed load keeps
 * what was serving and records the reason (index, log, metrics).
 *
 * Threads: lookups and inference from any I/O thread; loads run on the manager's control
 * thread, one model at a time, so concurrent control requests for one model are serialised. */
#ifndef SL_MANAGER_H
#define SL_MANAGER_H

#include "core/buf.h"
#include "core/runtime.h"
#include "oip/oip_types.h"
#include "inference/model_config.h"
#include "inference/stats.h"

typedef struct sl_mm sl_mm_t;

typedef struct sl_mm_opts {
    const char *repository;    /* directory of models/<name>/...; copied; NULL: no models (ready) */
    const char *backend_dir;   /* shared-object backends; NULL: built-ins only */
    uint32_t poll_interval_ms; /* 0: no polling; else rescan the repository this often */
} sl_mm_opts_t;

/* Opens the repository (it must be a readable directory) and reads every model's config; a
 * model whose config is invalid is recorded as UNAVAILABLE with the reason, not fatal. Returns
 * NULL with a message in err when the repository itself is unusable. Nothing loads yet. */
sl_mm_t *sl_mm_new(const sl_mm_opts_t *opts, sl_buf_t *err);
/* Starts the control thread: loads every model (in the background) and then polls if asked. */
void sl_mm_start(sl_mm_t *mm);
/* Stops polling and control, unloads every version (queued requests finish), frees. */
void sl_mm_free(sl_mm_t *mm);

/* True when every model in the repository at startup has a READY version (models whose config
 * or load failed make it false: readiness means "serving what was configured"). */
bool sl_mm_ready(sl_mm_t *mm);

/* A READY version, reference-counted: valid until sl_mm_release. */
typedef struct sl_mm_model sl_mm_model_t;

/* Looks up name and version (NULL or "": the newest READY version by semver). Returns
 * SL_INFER_OK and *out, SL_INFER_NOT_FOUND (unknown model or version, message says which) or
 * SL_INFER_UNAVAILABLE (known but not ready, with the state and reason). */
sl_infer_code_t sl_mm_acquire(sl_mm_t *mm, const char *name, const char *version,
                              sl_mm_model_t **out, sl_infer_error_t *err);
void sl_mm_release(sl_mm_model_t *m);

const char *sl_mm_model_name(const sl_mm_model_t *m);
const char *sl_mm_model_version(const sl_mm_model_t *m);
const sl_model_config_t *sl_mm_model_config(const sl_mm_model_t *m);
const sl_manifest_t *sl_mm_model_manifest(const sl_mm_model_t *m);
sl_model_stats_t *sl_mm_model_stats(const sl_mm_model_t *m);

/* The READY versions of a model, newest first, as a NULL-terminated array of strings the
 * caller frees with sl_mm_strv_free. NULL when the model is unknown. */
char **sl_mm_versions(sl_mm_t *mm, const char *name);
void sl_mm_strv_free(char **v);

/* Runs a request (from an I/O thread): finds the version, validates the inputs, answers from
 * the response cache when enabled and present, else queues it. The request is always completed
 * through req->done on req->loop, never before this returns. */
void sl_mm_infer(sl_mm_t *mm, sl_infer_request_t *req);

/* Model control. The result arrives as cb(status, message, arg) on loop (or directly on the
 * control thread when loop is NULL): status 0, or SL_ENOENT (no such model in the repository),
 * SL_EINVAL (config invalid, sha256 mismatch, backend refused: message says why). */
typedef void (*sl_mm_control_cb)(int status, const char *message, void *arg);
/* (Re)loads name from the repository as it is now: its config and the versions its policy
 * selects; serving versions keep serving until the new ones are READY. */
void sl_mm_load(sl_mm_t *mm, const char *name, sl_loop_t *loop, sl_mm_control_cb cb, void *arg);
/* Unloads every version of name (in-flight and queued requests finish first). */
void sl_mm_unload(sl_mm_t *mm, const char *name, sl_loop_t *loop, sl_mm_control_cb cb, void *arg);

/* The repository index: every model directory and loaded version with its state. */
typedef struct sl_mm_index_entry {
    char *name;
    char *version;     /* NULL for a model with no version loaded or loading */
    const char *state; /* "READY", "LOADING", "UNLOADING", "UNAVAILABLE" */
    char *reason;      /* "" unless UNAVAILABLE or a failed reload */
} sl_mm_index_entry_t;
size_t sl_mm_index(sl_mm_t *mm, bool ready_only, sl_mm_index_entry_t **out);
void sl_mm_index_free(sl_mm_index_entry_t *e, size_t n);

/* Calls fn for each READY version (name NULL: all models; version NULL: all versions), with the
 * version acquired for the duration of the call. Returns the number visited. */
size_t sl_mm_each(sl_mm_t *mm, const char *name, const char *version,
                  void (*fn)(sl_mm_model_t *m, void *arg), void *arg);

#endif
