/* Hot reload of the configuration file on a libuv loop (the runtime's main loop). It watches the
 * file's directory, not the file: Kubernetes ConfigMap volumes replace the file by swapping a
 * `..data` symlink, so the file's own inode changes and a watch on it would go quiet. Changes
 * are debounced (100 ms), and a cheap stat poll every 2 s backs up the watch (re-arming it when
 * the directory itself was replaced, and covering file systems without inotify).
 *
 * A reload re-reads the file; identical bytes do nothing. A file that fails to load is logged
 * ("config reload failed", one line per file:line error) and the old config stays; the gauge
 * sluice_config_last_reload_success goes to 0. A file that loads keeps the running value of
 * every option that needs a restart (logged as "restart required", naming it), applies the
 * reloadable ones (log.level, log.rate_limit directly; the rest in the app's on_apply), and sets
 * the gauge to 1 and sluice_config_last_reload_success_timestamp_seconds to now.
 *
 * The current config is updated in place, never replaced: a pointer to it taken at start-up
 * stays valid until sl_config_reloader_stop(). Only its reloadable fields (all scalars) change,
 * and only on the loop's thread; other threads learn of them through the apply hooks. */
#ifndef SL_CONFIG_RELOAD_H
#define SL_CONFIG_RELOAD_H

#include "core/config.h"

#include <stdint.h>
#include <uv.h>

#define SL_CONFIG_RELOAD_DEBOUNCE_MS 100
#define SL_CONFIG_RELOAD_POLL_MS     2000

typedef struct sl_config_reloader sl_config_reloader_t;

/* Called on the loop's thread after a successful reload, once the reloadable options are in
 * cfg (the current config, borrowed). Apply what the app owns here, e.g. the tracer's sample
 * ratio. */
typedef void (*sl_config_apply_cb)(const sl_config_t *cfg, void *arg);

/* Starts watching current->path. current must come from sl_malloc (or calloc) and hold a
 * loaded config; ownership passes to the reloader, which frees it at stop (after the close
 * callbacks ran). on_apply may be NULL; arg is passed through. With current->path NULL
 * (built-in defaults) nothing is watched. The reloader's handles do not keep the loop alive
 * (unref'd). Sets the reload gauges to success/now. Never returns NULL; problems are logged. */
sl_config_reloader_t *sl_config_reloader_start(uv_loop_t *loop, sl_config_t *current,
                                               sl_config_apply_cb on_apply, void *arg);

/* Requests a reload now (SIGHUP): safe from any thread and from a signal handler. Unlike a
 * watched change it reloads even if the bytes are the same, so referenced secret files
 * (${file:...}) are read again. */
void sl_config_reloader_trigger(sl_config_reloader_t *r);

/* The config in effect: the pointer given to start, valid until stop. */
const sl_config_t *sl_config_reloader_current(const sl_config_reloader_t *r);

/* What the reloader did since start, for tests and health checks. */
typedef struct sl_config_reload_stats {
    uint64_t checks;  /* times the file was read (changed or not) */
    uint64_t applied; /* reloads that loaded and were swapped in */
    uint64_t failed;  /* reloads that failed to read or load */
} sl_config_reload_stats_t;
void sl_config_reloader_stats(const sl_config_reloader_t *r, sl_config_reload_stats_t *out);

/* Stops watching and closes the handles; the reloader and its current config are freed once
 * the loop has run the close callbacks. Call on the loop's thread. NULL is fine. */
void sl_config_reloader_stop(sl_config_reloader_t *r);

#endif
