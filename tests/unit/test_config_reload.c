/* Unit tests of core/config_reload against real files in a temp directory and a real libuv
 * loop: rewrites (valid, invalid, unchanged), restart-only options, a Kubernetes ConfigMap
 * `..data` symlink swap, a replaced directory, manual triggers, the gauges and the log lines. */
#include "core/config_reload.h"

#include "core/log.h"
#include "core/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 8000 /* generous: the poll fallback alone answers within 2 s */

typedef struct {
    char dir[64];
    char path[128];
    char log_path[128];
    int log_fd;
    uv_loop_t loop;
    int applies;
    double applied_ratio;
} fx_t;

static void on_apply(const sl_config_t *cfg, void *arg) {
    fx_t *fx = arg;
    fx->applies++;
    fx->applied_ratio = cfg->tracing.sample_ratio;
}

static void write_file(const char *path, const char *content) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(close(fd), 0);
}

/* How editors and config management write: a temp file renamed over the old one. */
static void write_atomic(const char *path, const char *content) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_file(tmp, content);
    assert_int_equal(rename(tmp, path), 0);
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    sl_buf_t b = SL_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(&b, chunk, n);
    fclose(f);
    sl_buf_putc(&b, '\0');
    return b.data;
}

static bool log_contains(fx_t *fx, const char *needle) {
    char *s = read_all(fx->log_path);
    bool found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

static int setup(void **state) {
    fx_t *fx = sl_calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sl_test_reload_XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/sluice.yaml", fx->dir);
    snprintf(fx->log_path, sizeof fx->log_path, "%s/log.jsonl", fx->dir);
    fx->log_fd = open(fx->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fx->log_fd < 0 || uv_loop_init(&fx->loop) != 0) {
        free(fx);
        return -1;
    }
    sl_log_set_fd(fx->log_fd);
    sl_log_level_set(SL_LOG_INFO);
    sl_log_set_rate_limit(0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    sl_log_set_fd(2);
    sl_log_level_set(SL_LOG_INFO);
    int rc = uv_loop_close(&fx->loop); /* UV_EBUSY: a handle was left open */
    close(fx->log_fd);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (getenv("SL_TEST_KEEP")) { /* for debugging: keep the files and the log */
        fprintf(stderr, "kept %s\n", fx->dir);
    } else if (system(cmd) != 0) {
        rc = -1;
    }
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void on_tick(uv_timer_t *t) {}

typedef bool (*pred_fn)(void *arg);

/* Runs the loop until pred holds or WAIT_MS pass; a ticking timer keeps uv_run from returning
 * at once (the reloader's handles are unref'd). */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg) {
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t deadline = sl_now_ms() + WAIT_MS;
    bool ok;
    while (!(ok = pred(arg)) && sl_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

typedef struct {
    sl_config_reloader_t *r;
    uint64_t checks, applied, failed; /* wait until each is at least this */
} want_t;

static bool stats_reached(void *arg) {
    want_t *w = arg;
    sl_config_reload_stats_t s;
    sl_config_reloader_stats(w->r, &s);
    return s.checks >= w->checks && s.applied >= w->applied && s.failed >= w->failed;
}

static void wait_stats(fx_t *fx, sl_config_reloader_t *r, uint64_t checks, uint64_t applied,
                       uint64_t failed) {
    want_t w = {r, checks, applied, failed};
    if (!run_until(&fx->loop, stats_reached, &w)) {
        sl_config_reload_stats_t s;
        sl_config_reloader_stats(r, &s);
        print_error("timed out: checks %llu applied %llu failed %llu, want >= %llu %llu %llu\n",
                    (unsigned long long)s.checks, (unsigned long long)s.applied,
                    (unsigned long long)s.failed, (unsigned long long)checks,
                    (unsigned long long)applied, (unsigned long long)failed);
        fail();
    }
}

static void assert_stats(sl_config_reloader_t *r, uint64_t applied, uint64_t failed) {
    sl_config_reload_stats_t s;
    sl_config_reloader_stats(r, &s);
    assert_int_equal(s.applied, applied);
    assert_int_equal(s.failed, failed);
}

static sl_config_reloader_t *start(fx_t *fx, const char *path) {
    sl_config_t *cfg = sl_calloc(1, sizeof *cfg);
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config_load_file(path, cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msgs[i]);
    assert_int_equal(rc, 0);
    sl_log_level_set(cfg->log.level);
    return sl_config_reloader_start(&fx->loop, cfg, on_apply, fx);
}

static void stop(fx_t *fx, sl_config_reloader_t *r) {
    sl_config_reloader_stop(r);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* runs the close callbacks, which free it */
}

static double gauge(const char *name) {
    return sl_gauge_value(sl_metrics_gauge(sl_metrics_default(), name, "ignored"));
}

static void test_rewrites(void **state) {
    fx_t *fx = *state;
    write_file(fx->path, "log:\n  level: info\n");
    sl_config_reloader_t *r = start(fx, fx->path);
    const sl_config_t *initial = sl_config_reloader_current(r);
    assert_int_equal(gauge("sluice_config_last_reload_success"), 1);
    assert_true(gauge("sluice_config_last_reload_success_timestamp_seconds") > 1.6e9);

    /* A valid change: reloadable options take effect, the app's callback sees the new ones. */
    write_file(fx->path, "log:\n  level: debug\n  rate_limit: 7\ntracing:\n  sample_ratio: 0.5\n");
    wait_stats(fx, r, 0, 1, 0);
    assert_int_equal(sl_log_level_get(), SL_LOG_DEBUG);
    const sl_config_t *cur = sl_config_reloader_current(r);
    assert_ptr_equal(cur, initial); /* updated in place: pointers held since start stay valid */
    assert_int_equal(cur->log.level, SL_LOG_DEBUG);
    assert_int_equal(cur->log.rate_limit, 7);
    assert_string_equal(cur->path, fx->path);
    assert_int_equal(fx->applies, 1);
    assert_true(fx->applied_ratio == 0.5);
    assert_int_equal(gauge("sluice_config_last_reload_success"), 1);
    assert_true(log_contains(fx, "\"msg\":\"config reloaded\""));

    /* An invalid file: logged with file:line, the old config stays, the gauge drops. */
    write_atomic(fx->path, "log:\n  level: loud\n  rate_limit: -1\n");
    wait_stats(fx, r, 0, 1, 1);
    assert_int_equal(sl_log_level_get(), SL_LOG_DEBUG);
    assert_int_equal(sl_config_reloader_current(r)->log.rate_limit, 7);
    assert_int_equal(gauge("sluice_config_last_reload_success"), 0);
    assert_true(log_contains(fx, "\"msg\":\"config reload failed\""));
    char want[256];
    snprintf(want, sizeof want, "%s:2: log.level: expected one of", fx->path);
    assert_true(log_contains(fx, want));
    snprintf(want, sizeof want, "%s:3: log.rate_limit: '-1' is out of bounds", fx->path);
    assert_true(log_contains(fx, want));
    assert_int_equal(fx->applies, 1);

    /* The same bytes again: read, but neither reloaded nor logged again. */
    sl_config_reload_stats_t s;
    sl_config_reloader_stats(r, &s);
    write_file(fx->path, "log:\n  level: loud\n  rate_limit: -1\n");
    wait_stats(fx, r, s.checks + 1, 0, 0);
    assert_stats(r, 1, 1);

    /* Fixed: applied again, gauge back to 1. */
    write_atomic(fx->path, "log:\n  level: warn\n");
    wait_stats(fx, r, 0, 2, 1);
    assert_int_equal(sl_log_level_get(), SL_LOG_WARN);
    assert_int_equal(gauge("sluice_config_last_reload_success"), 1);
    assert_int_equal(fx->applies, 2);
    stop(fx, r);
}

static void test_restart_required(void **state) {
    fx_t *fx = *state;
    write_file(fx->path, "server: {io_threads: 2, bind_host: 127.0.0.1}\nlog: {level: info}\n");
    sl_config_reloader_t *r = start(fx, fx->path);
    write_atomic(fx->path, "server: {io_threads: 3, bind_host: 0.0.0.0}\nlog: {level: error}\n"
                           "inference: {grpc_port: 7001}\n");
    wait_stats(fx, r, 0, 1, 0);
    const sl_config_t *cur = sl_config_reloader_current(r);
    assert_int_equal(cur->log.level, SL_LOG_ERROR); /* applied */
    assert_int_equal(cur->server.io_threads, 2);    /* kept until a restart */
    assert_string_equal(cur->server.bind_host, "127.0.0.1");
    assert_int_equal(cur->inference.grpc_port, 8001);
    sl_log_level_set(SL_LOG_INFO);
    assert_true(log_contains(fx, "\"msg\":\"restart required\",\"option\":\"server.io_threads\""));
    assert_true(log_contains(fx, "\"msg\":\"restart required\",\"option\":\"server.bind_host\""));
    assert_true(log_contains(fx, "\"option\":\"inference.grpc_port\""));
    assert_false(log_contains(fx, "\"option\":\"log.level\""));
    stop(fx, r);
}

/* Kubernetes ConfigMap volume layout: the file is a symlink through ..data, which the kubelet
 * swaps atomically to a new timestamped directory. */
static void configmap_version(fx_t *fx, const char *version, const char *content) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fx->dir, version);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/sluice.yaml", fx->dir, version);
    write_file(path, content);
}

static void configmap_swap(fx_t *fx, const char *version) {
    char tmp[256], data[256];
    snprintf(tmp, sizeof tmp, "%s/..data_tmp", fx->dir);
    snprintf(data, sizeof data, "%s/..data", fx->dir);
    assert_int_equal(symlink(version, tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
}

static void test_configmap_symlink_swap(void **state) {
    fx_t *fx = *state;
    configmap_version(fx, "..2026_01_01_00_00_00.1", "log:\n  level: info\n");
    configmap_swap(fx, "..2026_01_01_00_00_00.1");
    assert_int_equal(symlink("..data/sluice.yaml", fx->path), 0);
    sl_config_reloader_t *r = start(fx, fx->path);

    configmap_version(fx, "..2026_01_02_00_00_00.2", "log:\n  level: warn\n");
    configmap_swap(fx, "..2026_01_02_00_00_00.2");
    wait_stats(fx, r, 0, 1, 0);
    assert_int_equal(sl_config_reloader_current(r)->log.level, SL_LOG_WARN);
    assert_int_equal(sl_log_level_get(), SL_LOG_WARN);

    /* The watch still works after the first swap. */
    configmap_version(fx, "..2026_01_03_00_00_00.3", "log:\n  level: error\n");
    configmap_swap(fx, "..2026_01_03_00_00_00.3");
    wait_stats(fx, r, 0, 2, 0);
    assert_int_equal(sl_config_reloader_current(r)->log.level, SL_LOG_ERROR);
    assert_int_equal(fx->applies, 2);
    stop(fx, r);
}

/* The whole directory is replaced: the old watch goes with the old inode; the poll re-arms. */
static void test_directory_replaced(void **state) {
    fx_t *fx = *state;
    char conf[128], path[160], old[160];
    snprintf(conf, sizeof conf, "%s/conf", fx->dir);
    snprintf(path, sizeof path, "%s/sluice.yaml", conf);
    snprintf(old, sizeof old, "%s/conf.old", fx->dir);
    assert_int_equal(mkdir(conf, 0755), 0);
    write_file(path, "log:\n  level: info\n");
    sl_config_reloader_t *r = start(fx, path);

    assert_int_equal(rename(conf, old), 0);
    assert_int_equal(mkdir(conf, 0755), 0);
    write_file(path, "log:\n  level: debug\n");
    wait_stats(fx, r, 0, 1, 0);
    assert_int_equal(sl_config_reloader_current(r)->log.level, SL_LOG_DEBUG);

    /* And the new directory is watched from now on. */
    write_atomic(path, "log:\n  level: warn\n");
    wait_stats(fx, r, 0, 2, 0);
    assert_int_equal(sl_config_reloader_current(r)->log.level, SL_LOG_WARN);
    stop(fx, r);
}

static void test_trigger_and_missing_file(void **state) {
    fx_t *fx = *state;
    write_file(fx->path, "log:\n  level: info\n");
    sl_config_reloader_t *r = start(fx, fx->path);
    /* A manual trigger reloads even identical bytes (secret files may have changed). */
    sl_config_reloader_trigger(r);
    wait_stats(fx, r, 0, 1, 0);
    assert_int_equal(fx->applies, 1);

    /* A deleted file fails the reload and keeps the config. */
    assert_int_equal(unlink(fx->path), 0);
    wait_stats(fx, r, 0, 1, 1);
    assert_int_equal(gauge("sluice_config_last_reload_success"), 0);
    char want[256];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", fx->path);
    assert_true(log_contains(fx, want));
    assert_int_equal(sl_config_reloader_current(r)->log.level, SL_LOG_INFO);

    /* It comes back: applied. */
    write_atomic(fx->path, "log:\n  level: debug\n");
    wait_stats(fx, r, 0, 2, 1);
    assert_int_equal(sl_log_level_get(), SL_LOG_DEBUG);
    stop(fx, r);
}

static bool log_has_no_file(void *arg) {
    return log_contains(arg, "no config file is in use");
}

static void test_builtin_defaults(void **state) {
    fx_t *fx = *state;
    sl_config_t *cfg = sl_calloc(1, sizeof *cfg);
    sl_config_defaults(cfg);
    sl_config_reloader_t *r = sl_config_reloader_start(&fx->loop, cfg, NULL, NULL);
    assert_ptr_equal(sl_config_reloader_current(r), cfg);
    sl_config_reloader_trigger(r);
    assert_true(run_until(&fx->loop, log_has_no_file, fx));
    assert_stats(r, 0, 0);
    stop(fx, r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rewrites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configmap_symlink_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trigger_and_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_defaults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
