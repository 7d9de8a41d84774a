/* Unit tests for the model manager over real repositories built in a temporary directory: the
 * `simple` example backend (a shared object from <build>/backends) and the onnx backend on the
 * digits MLP. They cover loading and readiness, inference and its errors, a sha256 mismatch
 * refused while the old version keeps serving, reload under load without a failed request,
 * unload with a request in flight, polling, the response cache and warm-up. */
#include "core/common.h"
#include "engine/npy.h"
#include "inference/manager.h"
#include "inference/repository.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "inference_test_util.h"

#define DEADLINE_MS 20000

static char g_root[256];
static char g_backends[PATH_MAX + 16];

/* ---- files ---- */

static void rmrf(const char *rel) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", g_root, rel);
    assert_int_equal(system(cmd), 0);
}

/* A version directory: artifact `model.bin` with content, and a manifest whose sha256 is
 * right (or deliberately wrong). */
static void add_version(const char *model, const char *ver, const char *content, bool good_sha) {
    char rel[256], path[512], hex[65], body[512];
    snprintf(rel, sizeof rel, "%s/%s", model, ver);
    make_repo_dir(g_root, rel);
    snprintf(rel, sizeof rel, "%s/%s/model.bin", model, ver);
    write_repo_file(g_root, rel, content);
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    assert_int_equal(sl_repo_sha256_file(path, hex), 0);
    if (!good_sha) hex[0] = hex[0] == '0' ? '1' : '0';
    snprintf(rel, sizeof rel, "%s/%s/manifest.json", model, ver);
    snprintf(body, sizeof body, "{\"artifact\":\"model.bin\",\"sha256\":\"%s\",\"semver\":\"%s\"}",
             hex, ver);
    write_repo_file(g_root, rel, body);
}

static const char *simple_config(const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "backend: simple\n"
             "max_batch_size: 8\n"
             "inputs:\n"
             "  - {name: INPUT0, datatype: INT32, dims: [4]}\n"
             "  - {name: INPUT1, datatype: INT32, dims: [4]}\n"
             "outputs:\n"
             "  - {name: OUTPUT0, datatype: INT32, dims: [4]}\n"
             "  - {name: OUTPUT1, datatype: INT32, dims: [4]}\n"
             "%s",
             extra);
    return buf;
}

static void add_simple_model(const char *name, const char *extra) {
    char rel[256];
    make_repo_dir(g_root, name);
    snprintf(rel, sizeof rel, "%s/config.yaml", name);
    write_repo_file(g_root, rel, simple_config(extra));
    add_version(name, "1.0.0", "v1", true);
}

/* ---- waiting ---- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The newest READY version of name, or "" (a static buffer). */
static const char *serving(sl_mm_t *mm, const char *name) {
    static char v[64];
    v[0] = '\0';
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    if (sl_mm_acquire(mm, name, NULL, &m, &err) == SL_INFER_OK) {
        snprintf(v, sizeof v, "%s", sl_mm_model_version(m));
        sl_mm_release(m);
    }
    return v;
}

/* Polls (with a deadline) until name serves version want ("" = until nothing serves). */
static void wait_serving(sl_mm_t *mm, const char *name, const char *want) {
    uint64_t end = now_ms() + DEADLINE_MS;
    while (strcmp(serving(mm, name), want) != 0) {
        if (now_ms() > end) {
            fprintf(stderr, "model %s serves '%s', expected '%s'\n", name, serving(mm, name), want);
            fail();
        }
        pause_ms(5);
    }
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    char msg[512];
} ctl_wait_t;

static void ctl_cb(int status, const char *message, void *arg) {
    ctl_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    snprintf(w->msg, sizeof w->msg, "%s", message);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Runs a load (or unload) and waits for its result. */
static int control(sl_mm_t *mm, bool load, const char *name, char *msg, size_t msg_len) {
    ctl_wait_t w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (load)
        sl_mm_load(mm, name, NULL, ctl_cb, &w);
    else
        sl_mm_unload(mm, name, NULL, ctl_cb, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (msg) snprintf(msg, msg_len, "%s", w.msg);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return w.status;
}

/* ---- inference ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    sl_infer_code_t code;
    char msg[256];
    char version[64];
    bool cached;
    int32_t out0[8 * 4];
    float logits[16 * 10];
} infer_wait_t;

static void infer_cb(sl_infer_request_t *req, sl_infer_response_t *resp,
                     const sl_infer_error_t *err, void *arg) {
    infer_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    if (resp) {
        w->code = SL_INFER_OK;
        snprintf(w->version, sizeof w->version, "%s", resp->model_version);
        w->cached = resp->cached;
        for (size_t i = 0; i < resp->n_outputs; i++) {
            const sl_infer_output_t *o = &resp->outputs[i];
            if (!strcmp(o->name, "OUTPUT0") && o->byte_size <= sizeof w->out0)
                memcpy(w->out0, o->data, o->byte_size);
            if (!strcmp(o->name, "logits") && o->byte_size <= sizeof w->logits)
                memcpy(w->logits, o->data, o->byte_size);
        }
    } else {
        w->code = err->code;
        snprintf(w->msg, sizeof w->msg, "%s", err->msg);
    }
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
}

static void infer_wait_init(infer_wait_t *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void infer_wait_finish(infer_wait_t *w) {
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* A request to the simple model: INPUT0 = base + i, INPUT1 = 1 (batch 1, 4 elements); or with
 * a wrong input name when bad_name. */
static sl_infer_request_t *simple_request(const char *name, const char *version, int32_t base,
                                          bool bad_name, infer_wait_t *w) {
    sl_infer_request_t *req = sl_infer_request_new(NULL, infer_cb, w);
    req->model_name = sl_infer_request_strndup(req, name, strlen(name));
    req->model_version = version ? sl_infer_request_strndup(req, version, strlen(version)) : NULL;
    for (int k = 0; k < 2; k++) {
        sl_infer_input_t *in = sl_infer_request_add_input(req);
        const char *n = k == 0 ? "INPUT0" : bad_name ? "INPUT9" : "INPUT1";
        in->name = sl_infer_request_strndup(req, n, strlen(n));
        in->dtype = SLUICE_DT_INT32;
        in->ndim = 2;
        in->dims[0] = 1;
        in->dims[1] = 4;
        int32_t *d = sl_infer_request_alloc(req, 16);
        for (int i = 0; i < 4; i++)
            d[i] = k == 0 ? base + i : 1;
        in->data = d;
        in->byte_size = 16;
    }
    return req;
}

static sl_infer_code_t infer_simple(sl_mm_t *mm, const char *name, const char *version,
                                    int32_t base, infer_wait_t *w) {
    infer_wait_init(w);
    sl_mm_infer(mm, simple_request(name, version, base, false, w));
    infer_wait_finish(w);
    return w->code;
}

/* ---- fixtures ---- */

static int repo_setup(void **state) {
    snprintf(g_root, sizeof g_root, "/tmp/sl_mm_test_XXXXXX");
    assert_non_null(mkdtemp(g_root));
    /* The example backends are built next to the test binaries: <build>/backends. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(g_backends, sizeof g_backends, "%s/backends", exe);
    return 0;
}

static int repo_teardown(void **state) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static sl_mm_t *new_mm(uint32_t poll_ms) {
    sl_mm_opts_t o = {.repository = g_root, .backend_dir = g_backends, .poll_interval_ms = poll_ms};
    sl_buf_t err = SL_BUF_INIT;
    sl_mm_t *mm = sl_mm_new(&o, &err);
    if (!mm) fprintf(stderr, "sl_mm_new: %s\n", err.data);
    assert_non_null(mm);
    sl_buf_free(&err);
    return mm;
}

static const sl_mm_index_entry_t *find_entry(const sl_mm_index_entry_t *e, size_t n,
                                             const char *name, const char *version) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, name) != 0) continue;
        if (!version ? !e[i].version : e[i].version && !strcmp(e[i].version, version)) return &e[i];
    }
    return NULL;
}

/* ---- tests ---- */

static void test_no_repository(void **state) {
    sl_mm_opts_t o = {0};
    sl_buf_t err = SL_BUF_INIT;
    sl_mm_t *mm = sl_mm_new(&o, &err);
    assert_non_null(mm);
    sl_mm_start(mm);
    assert_true(sl_mm_ready(mm));
    sl_mm_index_entry_t *e;
    assert_int_equal(sl_mm_index(mm, false, &e), 0);
    sl_mm_index_free(e, 0);
    sl_mm_free(mm);
    o.repository = "/nonexistent/models";
    assert_null(sl_mm_new(&o, &err));
    assert_non_null(strstr(err.data, "cannot read the model repository"));
    sl_buf_free(&err);
}

static void test_load_infer_and_errors(void **state) {
    add_simple_model("simple", "dynamic_batching: {max_queue_delay_us: 100}\n");
    make_repo_dir(g_root, "broken");
    write_repo_file(g_root, "broken/config.yaml", "backend: simple\nmax_batch_size: nope\n");
    sl_mm_t *mm = new_mm(0);

    /* Before start: the broken config is already visible; nothing is ready. */
    sl_mm_index_entry_t *e;
    size_t n = sl_mm_index(mm, false, &e);
    const sl_mm_index_entry_t *b = find_entry(e, n, "broken", NULL);
    assert_non_null(b);
    assert_string_equal(b->state, "UNAVAILABLE");
    assert_non_null(strstr(b->reason, "broken/config.yaml:2: max_batch_size must be an integer"));
    sl_mm_index_free(e, n);
    assert_false(sl_mm_ready(mm));

    sl_mm_start(mm);
    wait_serving(mm, "simple", "1.0.0");
    infer_wait_t w;
    assert_int_equal(infer_simple(mm, "simple", NULL, 10, &w), SL_INFER_OK);
    assert_string_equal(w.version, "1.0.0");
    for (int i = 0; i < 4; i++)
        assert_int_equal(w.out0[i], 10 + i + 1);
    assert_int_equal(infer_simple(mm, "simple", "1.0.0", 0, &w), SL_INFER_OK);

    /* Errors a client sees. */
    assert_int_equal(infer_simple(mm, "nope", NULL, 0, &w), SL_INFER_NOT_FOUND);
    assert_string_equal(w.msg, "unknown model 'nope'");
    assert_int_equal(infer_simple(mm, "simple", "9.9.9", 0, &w), SL_INFER_NOT_FOUND);
    assert_string_equal(w.msg, "unknown version '9.9.9' of model 'simple'");
    assert_int_equal(infer_simple(mm, "broken", NULL, 0, &w), SL_INFER_UNAVAILABLE);
    infer_wait_init(&w);
    sl_mm_infer(mm, simple_request("simple", NULL, 0, true, &w));
    infer_wait_finish(&w);
    assert_int_equal(w.code, SL_INFER_INVALID);
    assert_non_null(strstr(w.msg, "INPUT9"));

    /* Statistics: two successes, one failure (the invalid request). */
    sl_mm_model_t *m = NULL;
    sl_infer_error_t err;
    assert_int_equal(sl_mm_acquire(mm, "simple", "", &m, &err), SL_INFER_OK);
    sl_model_stats_snapshot_t s;
    sl_model_stats_snapshot(sl_mm_model_stats(m), &s);
    assert_int_equal(s.success_count, 2);
    assert_int_equal(s.fail_count, 1);
    sl_model_stats_snapshot_free(&s);
    assert_string_equal(sl_mm_model_name(m), "simple");
    assert_string_equal(sl_mm_model_config(m)->backend, "simple");
    assert_string_equal(sl_mm_model_manifest(m)->artifact, "model.bin");
    sl_mm_release(m);

    char **v = sl_mm_versions(mm, "simple");
    assert_string_equal(v[0], "1.0.0");
    assert_null(v[1]);
    sl_mm_strv_free(v);
    assert_null(sl_mm_versions(mm, "nope"));

    /* Readiness: the broken model keeps the server unready until it is unloaded. */
    assert_false(sl_mm_ready(mm));
    char msg[512];
    assert_int_equal(control(mm, false, "broken", msg, sizeof msg), 0);
    assert_true(sl_mm_ready(mm));
    assert_int_equal(control(mm, false, "ghost", msg, sizeof msg), SL_ENOENT);
    assert_int_equal(control(mm, true, "ghost", msg, sizeof msg), SL_ENOENT);
    assert_int_equal(control(mm, true, "../etc", msg, sizeof msg), SL_ENOENT);
    assert_int_equal(control(mm, true, "broken", msg, sizeof msg), SL_EINVAL);
    assert_non_null(strstr(msg, "max_batch_size must be an integer"));
    sl_mm_free(mm);
}

static void test_sha_mismatch_keeps_old_version(void **state) {
    add_simple_model("fraud", "");
    sl_mm_t *mm = new_mm(0);
    sl_mm_start(mm);
    wait_serving(mm, "fraud", "1.0.0");

    add_version("fraud", "1.1.0", "v2", false); /* corrupt: the manifest's sha256 is wrong */
    char msg[512];
    assert_int_equal(control(mm, true, "fraud", msg, sizeof msg), SL_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s/fraud/1.1.0/model.bin: sha256 mismatch (manifest says ",
             strrchr(g_root, '/') + 1);
    assert_non_null(strstr(msg, want));
    assert_string_equal(serving(mm, "fraud"), "1.0.0");
    infer_wait_t w;
    assert_int_equal(infer_simple(mm, "fraud", NULL, 1, &w), SL_INFER_OK);
    assert_string_equal(w.version, "1.0.0");
    assert_int_equal(infer_simple(mm, "fraud", "1.1.0", 1, &w), SL_INFER_UNAVAILABLE);

    sl_mm_index_entry_t *e;
    size_t n = sl_mm_index(mm, false, &e);
    const sl_mm_index_entry_t *old = find_entry(e, n, "fraud", "1.0.0");
    const sl_mm_index_entry_t *bad = find_entry(e, n, "fraud", "1.1.0");
    assert_non_null(old);
    assert_non_null(bad);
    assert_string_equal(old->state, "READY");
    assert_non_null(strstr(old->reason, "sha256 mismatch")); /* the failed reload is reported */
    assert_string_equal(bad->state, "UNAVAILABLE");
    assert_non_null(strstr(bad->reason, "sha256 mismatch"));
    sl_mm_index_free(e, n);
    assert_true(sl_mm_ready(mm));

    /* Repaired: the new version replaces the old one (latest: 1). */
    rmrf("fraud/1.1.0");
    add_version("fraud", "1.1.0", "v2", true);
    assert_int_equal(control(mm, true, "fraud", msg, sizeof msg), 0);
    assert_string_equal(serving(mm, "fraud"), "1.1.0");
    uint64_t end = now_ms() + DEADLINE_MS;
    while (infer_simple(mm, "fraud", "1.0.0", 1, &w) != SL_INFER_NOT_FOUND) {
        assert_true(now_ms() < end); /* UNAVAILABLE while unloading, then gone */
        pause_ms(5);
    }
    n = sl_mm_index(mm, false, &e);
    assert_string_equal(find_entry(e, n, "fraud", "1.1.0")->reason, "");
    sl_mm_index_free(e, n);
    sl_mm_free(mm);
}

typedef struct {
    sl_mm_t *mm;
    volatile bool stop;
    uint64_t ok, failed;
    char last_error[256];
} load_gen_t;

static void *load_gen(void *arg) {
    load_gen_t *g = arg;
    int32_t base = 0;
    while (!g->stop) {
        infer_wait_t w;
        if (infer_simple(g->mm, "slow", NULL, base, &w) == SL_INFER_OK && w.out0[3] == base + 4) {
            __atomic_add_fetch(&g->ok, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_add_fetch(&g->failed, 1, __ATOMIC_RELAXED);
            snprintf(g->last_error, sizeof g->last_error, "%s", w.msg);
        }
        base++;
    }
    return NULL;
}

static void test_reload_under_load(void **state) {
    add_simple_model("slow", "parameters: {delay_us: 2000}\ninstance_group: {count: 2}\n"
                             "dynamic_batching: {max_queue_delay_us: 500}\n");
    sl_mm_t *mm = new_mm(0);
    sl_mm_start(mm);
    wait_serving(mm, "slow", "1.0.0");
    load_gen_t g = {.mm = mm};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, load_gen, &g), 0);
    char msg[512];
    for (int round = 0; round < 3; round++) {
        uint64_t before = __atomic_load_n(&g.ok, __ATOMIC_RELAXED);
        assert_int_equal(control(mm, true, "slow", msg, sizeof msg), 0); /* forced reload */
        if (round == 1) {
            add_version("slow", "1.1.0", "v2", true);
        }
        /* Requests keep flowing between reloads. */
        uint64_t end = now_ms() + DEADLINE_MS;
        while (__atomic_load_n(&g.ok, __ATOMIC_RELAXED) < before + 20) {
            assert_true(now_ms() < end);
            pause_ms(1);
        }
    }
    assert_int_equal(control(mm, true, "slow", msg, sizeof msg), 0);
    assert_string_equal(serving(mm, "slow"), "1.1.0");
    g.stop = true;
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (g.failed)
        fprintf(stderr, "failed requests: %lu (%s)\n", (unsigned long)g.failed, g.last_error);
    assert_int_equal(g.failed, 0);
    assert_true(g.ok >= 60);
    sl_mm_free(mm);
}

static void test_unload_with_request_in_flight(void **state) {
    add_simple_model("slow", "parameters: {delay_us: 200000}\n"); /* 200 ms per execution */
    sl_mm_t *mm = new_mm(0);
    sl_mm_start(mm);
    wait_serving(mm, "slow", "1.0.0");
    infer_wait_t w;
    infer_wait_init(&w);
    sl_mm_infer(mm, simple_request("slow", NULL, 5, false, &w));
    char msg[512];
    assert_int_equal(control(mm, false, "slow", msg, sizeof msg), 0);
    assert_string_equal(serving(mm, "slow"), "");
    infer_wait_t w2;
    assert_int_equal(infer_simple(mm, "slow", NULL, 0, &w2), SL_INFER_UNAVAILABLE);
    infer_wait_finish(&w); /* the request taken before the unload still succeeds */
    assert_int_equal(w.code, SL_INFER_OK);
    assert_int_equal(w.out0[0], 6);

    /* The version shows as UNLOADING until its last request has gone, then the model as
     * UNAVAILABLE with the reason. */
    sl_mm_index_entry_t *e;
    size_t n;
    const sl_mm_index_entry_t *x;
    uint64_t end = now_ms() + DEADLINE_MS;
    for (;;) {
        n = sl_mm_index(mm, false, &e);
        x = find_entry(e, n, "slow", NULL);
        if (x) break;
        const sl_mm_index_entry_t *u = find_entry(e, n, "slow", "1.0.0");
        assert_non_null(u);
        assert_string_equal(u->state, "UNLOADING");
        sl_mm_index_free(e, n);
        assert_true(now_ms() < end);
        pause_ms(2);
    }
    assert_string_equal(x->state, "UNAVAILABLE");
    assert_string_equal(x->reason, "unloaded");
    sl_mm_index_free(e, n);
    assert_int_equal(sl_mm_index(mm, true, &e), 0);
    sl_mm_index_free(e, 0);

    assert_int_equal(control(mm, true, "slow", msg, sizeof msg), 0);
    assert_string_equal(serving(mm, "slow"), "1.0.0");
    sl_mm_free(mm);
}

static void test_poll(void **state) {
    add_simple_model("a", "");
    sl_mm_t *mm = new_mm(20);
    sl_mm_start(mm);
    wait_serving(mm, "a", "1.0.0");
    assert_true(sl_mm_ready(mm));
    /* A new version, a new model, a changed config, a removed model. */
    add_version("a", "1.0.1", "v2", true);
    wait_serving(mm, "a", "1.0.1");
    add_simple_model("b", "");
    wait_serving(mm, "b", "1.0.0");
    write_repo_file(g_root, "a/config.yaml",
                    simple_config("version_policy: {specific: [1.0.0]}\n"));
    wait_serving(mm, "a", "1.0.0");
    rmrf("b");
    uint64_t end = now_ms() + DEADLINE_MS;
    infer_wait_t w;
    while (infer_simple(mm, "b", NULL, 0, &w) != SL_INFER_NOT_FOUND)
        assert_true(now_ms() < end);
    /* A broken config does not take down what serves. */
    write_repo_file(g_root, "a/config.yaml", "backend: simple\ninputs: 3\n");
    end = now_ms() + DEADLINE_MS;
    for (;;) {
        sl_mm_index_entry_t *e;
        size_t n = sl_mm_index(mm, false, &e);
        const sl_mm_index_entry_t *x = find_entry(e, n, "a", "1.0.0");
        bool seen = x && strstr(x->reason, "inputs must be a sequence");
        sl_mm_index_free(e, n);
        if (seen) break;
        assert_true(now_ms() < end);
        pause_ms(5);
    }
    assert_string_equal(serving(mm, "a"), "1.0.0");
    assert_int_equal(infer_simple(mm, "a", NULL, 0, &w), SL_INFER_OK);
    sl_mm_free(mm);
}

static void test_response_cache(void **state) {
    add_simple_model("c", "response_cache: {enable: true, max_entries: 4}\n");
    sl_mm_t *mm = new_mm(0);
    sl_mm_start(mm);
    wait_serving(mm, "c", "1.0.0");
    infer_wait_t w;
    assert_int_equal(infer_simple(mm, "c", NULL, 7, &w), SL_INFER_OK);
    assert_false(w.cached);
    assert_int_equal(infer_simple(mm, "c", NULL, 7, &w), SL_INFER_OK);
    assert_true(w.cached);
    assert_int_equal(w.out0[2], 7 + 2 + 1);
    assert_int_equal(infer_simple(mm, "c", NULL, 8, &w), SL_INFER_OK);
    assert_false(w.cached);
    sl_mm_model_t *m;
    sl_infer_error_t err;
    assert_int_equal(sl_mm_acquire(mm, "c", NULL, &m, &err), SL_INFER_OK);
    sl_model_stats_snapshot_t s;
    sl_model_stats_snapshot(sl_mm_model_stats(m), &s);
    assert_int_equal(s.cache_hit_count, 1);
    assert_int_equal(s.cache_miss_count, 2);
    assert_int_equal(s.success_count, 3);
    sl_model_stats_snapshot_free(&s);
    sl_mm_release(m);
    sl_mm_free(mm);
}

static void test_onnx_model_with_warmup(void **state) {
    /* The digits MLP, its artifact a symlink into examples/, warmed up three ways. */
    make_repo_dir(g_root, "digits");
    make_repo_dir(g_root, "digits/2.0.0");
    make_repo_dir(g_root, "digits/warm");
    char src[512], dst[512], hex[65], body[512];
    snprintf(src, sizeof src, "%s/examples/models/mlp_digits/model.onnx", SOURCE_DIR);
    snprintf(dst, sizeof dst, "%s/digits/2.0.0/model.onnx", g_root);
    assert_int_equal(symlink(src, dst), 0);
    snprintf(dst, sizeof dst, "%s/digits/warm/pixels.npy", g_root);
    snprintf(src, sizeof src, "%s/examples/models/mlp_digits/reference/input.pixels.npy",
             SOURCE_DIR);
    assert_int_equal(symlink(src, dst), 0);
    snprintf(src, sizeof src, "%s/examples/models/mlp_digits/model.onnx", SOURCE_DIR);
    assert_int_equal(sl_repo_sha256_file(src, hex), 0);
    snprintf(body, sizeof body,
             "{\"artifact\":\"model.onnx\",\"sha256\":\"%s\",\"semver\":\"2.0.0\","
             "\"trained_at\":\"2024-01-01T00:00:00Z\",\"metrics\":{\"accuracy\":0.97}}",
             hex);
    write_repo_file(g_root, "digits/2.0.0/manifest.json", body);
    write_repo_file(g_root, "digits/config.yaml",
                    "backend: onnx\n"
                    "max_batch_size: 16\n"
                    "inputs: [{name: pixels, datatype: FP32, dims: [64]}]\n"
                    "outputs: [{name: logits, datatype: FP32, dims: [10]}]\n"
                    "dynamic_batching: {preferred_batch_sizes: [16]}\n"
                    "warmup:\n"
                    "  - {name: zeros, batch_size: 4}\n"
                    "  - {name: noise, random: true, batch_size: 16}\n"
                    "  - {name: real, inputs: {pixels: warm/pixels.npy}}\n");
    sl_mm_t *mm = new_mm(0);
    sl_mm_start(mm);
    wait_serving(mm, "digits", "2.0.0");
    assert_true(sl_mm_ready(mm));
    /* Three warm-ups ran, but the statistics count only clients' requests. */
    {
        sl_mm_model_t *m;
        sl_infer_error_t err;
        assert_int_equal(sl_mm_acquire(mm, "digits", "2.0.0", &m, &err), SL_INFER_OK);
        sl_model_stats_snapshot_t snap;
        sl_model_stats_snapshot(sl_mm_model_stats(m), &snap);
        assert_int_equal(snap.execution_count, 0);
        assert_int_equal(snap.inference_count, 0);
        assert_int_equal(snap.queue_count, 0);
        sl_model_stats_snapshot_free(&snap);
        sl_mm_release(m);
    }

    sl_tensor_t in, ref;
    sl_eng_error_t ee;
    snprintf(src, sizeof src, "%s/examples/models/mlp_digits/reference/input.pixels.npy",
             SOURCE_DIR);
    assert_int_equal(sl_npy_read_file(src, 0, &in, &ee), SL_ENG_OK);
    snprintf(src, sizeof src, "%s/examples/models/mlp_digits/reference/output.logits.npy",
             SOURCE_DIR);
    assert_int_equal(sl_npy_read_file(src, 0, &ref, &ee), SL_ENG_OK);
    infer_wait_t w;
    infer_wait_init(&w);
    sl_infer_request_t *req = sl_infer_request_new(NULL, infer_cb, &w);
    req->model_name = "digits";
    sl_infer_input_t *x = sl_infer_request_add_input(req);
    x->name = "pixels";
    x->dtype = SLUICE_DT_FP32;
    x->ndim = 2;
    x->dims[0] = in.dims[0];
    x->dims[1] = in.dims[1];
    x->data = in.data;
    x->byte_size = sl_tensor_nbytes(&in);
    sl_mm_infer(mm, req);
    infer_wait_finish(&w);
    assert_int_equal(w.code, SL_INFER_OK);
    const float *r = ref.data;
    for (int i = 0; i < 16 * 10; i++) {
        float d = fabsf(w.logits[i] - r[i]);
        assert_true(d <= 1e-4f * (1.0f + fabsf(r[i])));
    }
    free(in.data);
    free(ref.data);
    sl_mm_model_t *m;
    sl_infer_error_t err;
    assert_int_equal(sl_mm_acquire(mm, "digits", "2.0.0", &m, &err), SL_INFER_OK);
    assert_string_equal(sl_mm_model_manifest(m)->metrics_json, "{\"accuracy\":0.97}");
    sl_mm_release(m);
    sl_mm_free(mm);

    /* A warm-up that fails (wrong shape in the .npy) fails the load, with the reason. */
    float bad[16] = {0};
    sl_tensor_t t = {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {2, 8}, .data = bad};
    snprintf(dst, sizeof dst, "%s/digits/warm/bad.npy", g_root);
    assert_int_equal(sl_npy_write_file(dst, &t, &ee), SL_ENG_OK);
    write_repo_file(g_root, "digits/config.yaml",
                    "backend: onnx\nmax_batch_size: 16\n"
                    "inputs: [{name: pixels, datatype: FP32, dims: [64]}]\n"
                    "outputs: [{name: logits, datatype: FP32, dims: [10]}]\n"
                    "warmup: [{name: real, inputs: {pixels: warm/bad.npy}}]\n");
    mm = new_mm(0);
    char msg[512];
    sl_mm_start(mm);
    int rc = control(mm, true, "digits", msg, sizeof msg);
    assert_int_equal(rc, SL_EINVAL);
    if (!strstr(msg, "warm-up 'real'")) fprintf(stderr, "%s\n", msg);
    assert_non_null(strstr(msg, "warm-up 'real'"));
    assert_false(sl_mm_ready(mm));
    sl_mm_free(mm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_repository),
        cmocka_unit_test_setup_teardown(test_load_infer_and_errors, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_sha_mismatch_keeps_old_version, repo_setup,
                                        repo_teardown),
        cmocka_unit_test_setup_teardown(test_reload_under_load, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_unload_with_request_in_flight, repo_setup,
                                        repo_teardown),
        cmocka_unit_test_setup_teardown(test_poll, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_response_cache, repo_setup, repo_teardown),
        cmocka_unit_test_setup_teardown(test_onnx_model_with_warmup, repo_setup, repo_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
