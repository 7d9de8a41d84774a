/* The config file watcher: a directory watch plus a stat poll feed a debounce timer, whose
 * check reads the file and, when its bytes changed, validates it and applies the reloadable
 * options on the loop thread. Reading happens synchronously on that loop: the file is at most
 * 1 MiB and local, and the main loop carries no request traffic. */
#include "core/config_reload.h"

#include "core/common.h"
#include "core/log.h"
#include "core/metrics.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LOGGED_ERRORS 16

/* What a stat of the directory and of the file (through symlinks) said, to notice changes the
 * watch missed. */
typedef struct {
    dev_t dir_dev;
    ino_t dir_ino;
    int file_errno;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} file_sig_t;

struct sl_config_reloader {
    uv_loop_t *loop;
    sl_config_t *cur;
    sl_config_apply_cb on_apply;
    void *arg;
    char *path; /* NULL: built-in defaults, nothing to watch */
    char *dir;
    const char *base; /* the file's name in dir (points into path) */
    uv_fs_event_t watch;
    uv_timer_t debounce;
    uv_timer_t poll;
    uv_async_t async;
    int open_handles;
    bool watching;
    dev_t watch_dev;
    ino_t watch_ino;
    file_sig_t sig;
    sl_buf_t seen; /* the bytes last read (loaded or not), to ignore unchanged files */
    bool have_seen;
    int last_read_rc; /* of the last read, so a file that stays unreadable is logged once */
    sl_config_reload_stats_t stats;
    sl_gauge_t *g_success;
    sl_gauge_t *g_timestamp;
};

static void set_success(sl_config_reloader_t *r, bool ok) {
    sl_gauge_set(r->g_success, ok ? 1 : 0);
    if (ok) sl_gauge_set(r->g_timestamp, (double)sl_wall_time_ns() / 1e9);
}

static file_sig_t take_sig(const sl_config_reloader_t *r) {
    file_sig_t s;
    struct stat st;
    memset(&s, 0, sizeof s);
    if (stat(r->dir, &st) == 0) {
        s.dir_dev = st.st_dev;
        s.dir_ino = st.st_ino;
    }
    if (stat(r->path, &st) != 0) {
        s.file_errno = errno;
        return s;
    }
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtim = st.st_mtim;
    s.ctim = st.st_ctim;
    return s;
}

static bool sig_equal(const file_sig_t *a, const file_sig_t *b) {
    return a->dir_dev == b->dir_dev && a->dir_ino == b->dir_ino && a->file_errno == b->file_errno &&
           a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status);

/* (Re)starts the directory watch when it is not running or the directory was replaced. */
static void arm_watch(sl_config_reloader_t *r) {
    struct stat st;
    if (stat(r->dir, &st) != 0) return; /* the poll retries */
    if (r->watching && st.st_dev == r->watch_dev && st.st_ino == r->watch_ino) return;
    if (r->watching) uv_fs_event_stop(&r->watch);
    r->watching = false;
    int rc = uv_fs_event_start(&r->watch, on_fs_event, r->dir, 0);
    if (rc != 0) {
        SL_WARN("config", "cannot watch the config directory; polling only", SL_LF_S("dir", r->dir),
                SL_LF_S("error", uv_strerror(rc)));
        return;
    }
    r->watching = true;
    r->watch_dev = st.st_dev;
    r->watch_ino = st.st_ino;
}

static void log_failure(const sl_config_errors_t *errs) {
    size_t n = SL_MIN(errs->n, (size_t)MAX_LOGGED_ERRORS);
    for (size_t i = 0; i < n; i++) {
        SL_ERROR("config", "config reload failed", SL_LF_S("error", errs->msgs[i]),
                 SL_LF_U("errors", errs->n));
    }
    if (errs->n > n || errs->truncated) {
        SL_ERROR("config", "config reload failed: more errors not logged",
                 SL_LF_U("not_logged", errs->n - n), SL_LF_B("truncated", errs->truncated));
    }
}

/* Takes the reloadable options that changed from next (heap-allocated; freed here) into the
 * current config, which is updated in place rather than replaced: its address is held by the
 * app since start-up, and every reloadable option is a scalar, so nothing it points to goes
 * away. Options that need a restart keep their running values and are named in a warning. */
static void apply(sl_config_reloader_t *r, sl_config_t *next) {
    size_t n;
    const sl_config_option_t *opts = sl_config_options(&n);
    uint64_t restart = 0;
    /* Warnings first: applying log.level could otherwise silence them. */
    for (size_t i = 0; i < n; i++) {
        const sl_config_option_t *o = &opts[i];
        if (o->reloadable || sl_config_option_equal(o, r->cur, next)) continue;
        /* Values are not logged: some carry credentials (an endpoint URL, a secret). */
        SL_WARN("config", "restart required", SL_LF_S("option", o->name),
                SL_LF_S("reason", "changed in the file; the running value stays until a restart"));
        restart++;
    }
    for (size_t i = 0; i < n; i++) {
        const sl_config_option_t *o = &opts[i];
        if (!o->reloadable || sl_config_option_equal(o, r->cur, next)) continue;
        sl_config_option_copy(o, r->cur, next);
        if (o->apply) o->apply(r->cur);
    }
    sl_config_free(next);
    free(next);
    if (r->on_apply) r->on_apply(r->cur, r->arg);
    r->stats.applied++;
    set_success(r, true);
    SL_INFO("config", "config reloaded", SL_LF_S("path", r->path),
            SL_LF_U("restart_required", restart));
}

static void check(sl_config_reloader_t *r, bool force) {
    if (!r->path) {
        SL_WARN("config", "config reload requested, but no config file is in use");
        return;
    }
    arm_watch(r);
    r->sig = take_sig(r);
    sl_buf_t content = SL_BUF_INIT;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config__read_file(r->path, SL_CONFIG_MAX_FILE_BYTES, &content, &errs);
    r->stats.checks++;
    if (rc != SL_OK) {
        if (force || r->last_read_rc == SL_OK) {
            log_failure(&errs);
            r->stats.failed++;
            set_success(r, false);
        }
        r->last_read_rc = rc;
        r->have_seen = false;
        goto out;
    }
    r->last_read_rc = SL_OK;
    if (!force && r->have_seen && content.len == r->seen.len &&
        memcmp(content.data, r->seen.data, content.len) == 0) {
        goto out;
    }
    sl_buf_reset(&r->seen);
    sl_buf_append(&r->seen, content.data, content.len);
    r->have_seen = true;

    sl_config_t *next = sl_calloc(1, sizeof *next);
    if (sl_config_load_buffer(r->path, content.data, content.len, next, &errs) != SL_OK) {
        free(next);
        log_failure(&errs);
        r->stats.failed++;
        set_success(r, false);
        goto out;
    }
    next->path = sl_strdup(r->path);
    apply(r, next);
out:
    sl_buf_free(&content);
    sl_config_errors_free(&errs);
}

static void on_debounce(uv_timer_t *t) {
    check(t->data, false);
}

static void schedule(sl_config_reloader_t *r) {
    uv_timer_start(&r->debounce, on_debounce, SL_CONFIG_RELOAD_DEBOUNCE_MS, 0);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
    sl_config_reloader_t *r = h->data;
    if (status < 0) {
        SL_WARN("config", "config directory watch failed; polling only", SL_LF_S("dir", r->dir),
                SL_LF_S("error", uv_strerror(status)));
        uv_fs_event_stop(&r->watch);
        r->watching = false;
        schedule(r);
        return;
    }
    /* Only the file itself, or a Kubernetes ConfigMap swap (..data, ..2024_...): other files in
     * the directory (a log written next to the config) would keep restarting the debounce and
     * hold a change back for as long as they are written. */
    if (filename && strcmp(filename, r->base) != 0 && strncmp(filename, "..", 2) != 0) return;
    schedule(r);
}

static void on_poll(uv_timer_t *t) {
    sl_config_reloader_t *r = t->data;
    file_sig_t now = take_sig(r);
    if (!r->watching || now.dir_dev != r->watch_dev || now.dir_ino != r->watch_ino) arm_watch(r);
    if (!sig_equal(&now, &r->sig)) {
        r->sig = now;
        schedule(r);
    }
}

static void on_async(uv_async_t *a) {
    check(a->data, true);
}

sl_config_reloader_t *sl_config_reloader_start(uv_loop_t *loop, sl_config_t *current,
                                               sl_config_apply_cb on_apply, void *arg) {
    SL_ASSERT(loop != NULL);
    sl_config_reloader_t *r = sl_calloc(1, sizeof *r);
    r->loop = loop;
    r->cur = current;
    r->on_apply = on_apply;
    r->arg = arg;
    sl_metrics_t *m = sl_metrics_default();
    r->g_success =
        sl_metrics_gauge(m, "sluice_config_last_reload_success",
                         "Whether the last configuration reload succeeded (1) or not (0).");
    r->g_timestamp = sl_metrics_gauge(m, "sluice_config_last_reload_success_timestamp_seconds",
                                      "Time of the last successful configuration (re)load.");
    set_success(r, true);

    uv_fs_event_init(loop, &r->watch);
    uv_timer_init(loop, &r->debounce);
    uv_timer_init(loop, &r->poll);
    uv_async_init(loop, &r->async, on_async);
    r->watch.data = r->debounce.data = r->poll.data = r->async.data = r;
    uv_unref((uv_handle_t *)&r->watch);
    uv_unref((uv_handle_t *)&r->debounce);
    uv_unref((uv_handle_t *)&r->poll);
    uv_unref((uv_handle_t *)&r->async);
    r->open_handles = 4;
    if (!current->path) return r;

    r->path = sl_strdup(current->path);
    char *tmp = sl_strdup(current->path);
    r->dir = sl_strdup(dirname(tmp));
    free(tmp);
    const char *slash = strrchr(r->path, '/');
    r->base = slash ? slash + 1 : r->path;
    arm_watch(r);
    r->sig = take_sig(r);
    /* The bytes the running config came from, as far as we can tell now. */
    r->last_read_rc = sl_config__read_file(r->path, SL_CONFIG_MAX_FILE_BYTES, &r->seen, NULL);
    r->have_seen = r->last_read_rc == SL_OK;
    uv_timer_start(&r->poll, on_poll, SL_CONFIG_RELOAD_POLL_MS, SL_CONFIG_RELOAD_POLL_MS);
    return r;
}

void sl_config_reloader_trigger(sl_config_reloader_t *r) {
    uv_async_send(&r->async);
}

const sl_config_t *sl_config_reloader_current(const sl_config_reloader_t *r) {
    return r->cur;
}

void sl_config_reloader_stats(const sl_config_reloader_t *r, sl_config_reload_stats_t *out) {
    *out = r->stats;
}

static void on_closed(uv_handle_t *h) {
    sl_config_reloader_t *r = h->data;
    if (--r->open_handles > 0) return;
    sl_config_free(r->cur);
    free(r->cur);
    sl_buf_free(&r->seen);
    free(r->path);
    free(r->dir);
    free(r);
}

void sl_config_reloader_stop(sl_config_reloader_t *r) {
    if (!r) return;
    uv_close((uv_handle_t *)&r->watch, on_closed);
    uv_close((uv_handle_t *)&r->debounce, on_closed);
    uv_close((uv_handle_t *)&r->poll, on_closed);
    uv_close((uv_handle_t *)&r->async, on_closed);
}
