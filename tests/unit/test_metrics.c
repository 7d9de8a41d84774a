/* Unit tests for core/metrics: exact counts under concurrent updates, histogram buckets, the
 * overflow series, escaping, number formatting, stable order, re-registration, the process
 * metrics, and an independent checker of the text exposition format 0.0.4 run on every output. */
#include "core/common.h"
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- exposition checker ----------------------------------------------------------------- */

/* Written from the format's description, not from the renderer: names, label syntax and
 * escapes, values, HELP/TYPE once and before the samples, each family's samples contiguous, no
 * duplicate series, counters non-negative, histogram buckets cumulative with increasing le, a
 * +Inf bucket equal to _count, and a _sum. Fails the test naming the offending line. */

static bool name_ok(const char *s, size_t n, bool colon) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static bool value_ok(const char *s, double *out) {
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
        *out = !strcmp(s, "NaN") ? NAN : s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    if (!*s || strchr(s, 'n') || strchr(s, 'N') || strchr(s, 'x')) return false; /* inf, hex */
    char *end;
    *out = strtod(s, &end);
    return *end == '\0';
}

typedef struct {
    char family[128], type[16];
    char seen_help[64][128], seen_type[64][128], done[64][128];
    unsigned n_help, n_type, n_done;
    char series[4096][512];
    unsigned n_series;
    char hist_key[256]; /* labels of the histogram series in progress, without le */
    double last_le, last_bucket;
    bool inf_seen;
    int phase; /* histogram series: 0 none open, 1 in buckets, 2 after _sum */
} checker_t;

static bool in_list(char (*list)[128], unsigned n, const char *s) {
    for (unsigned i = 0; i < n; i++) {
        if (!strcmp(list[i], s)) return true;
    }
    return false;
}

static char g_check_error[512];

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(g_check_error, sizeof g_check_error, "line %u: %s: %.300s", lineno, (what),   \
                     line);                                                                        \
            return g_check_error;                                                                  \
        }                                                                                          \
    } while (0)

/* Returns NULL when text is a valid exposition, else what is wrong and where. */
static const char *exposition_error(const char *text) {
    static checker_t st;
    checker_t *c = &st;
    memset(c, 0, sizeof *c);
    size_t len = strlen(text);
    unsigned lineno = 0;
    const char *line = text;
    CHECK(len == 0 || text[len - 1] == '\n', "no newline at the end");
    char buf[4096];
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        lineno++;
        size_t n = (size_t)(strchr(p, '\n') - p);
        CHECK(n < sizeof buf, "line too long for the checker");
        memcpy(buf, p, n);
        buf[n] = '\0';
        line = buf;
        CHECK(n > 0, "empty line");
        if (buf[0] == '#') {
            char kw[8], name[128];
            int off = 0;
            if (sscanf(buf, "# %7s %127s %n", kw, name, &off) >= 2 &&
                (!strcmp(kw, "HELP") || !strcmp(kw, "TYPE"))) {
                CHECK(name_ok(name, strlen(name), true), "bad metric name");
                if (!strcmp(kw, "HELP")) {
                    CHECK(!in_list(c->seen_help, c->n_help, name), "second HELP");
                    snprintf(c->seen_help[c->n_help++], 128, "%s", name);
                    for (const char *h = strchr(buf + 7, ' ') + 1; *h; h++) {
                        if (*h == '\\') CHECK(h[1] == '\\' || h[1] == 'n', "bad escape in HELP");
                        if (*h == '\\') h++;
                    }
                } else {
                    const char *t = buf + off;
                    CHECK(!strcmp(t, "counter") || !strcmp(t, "gauge") || !strcmp(t, "histogram") ||
                              !strcmp(t, "summary") || !strcmp(t, "untyped"),
                          "bad TYPE");
                    CHECK(!in_list(c->seen_type, c->n_type, name), "second TYPE");
                    CHECK(strcmp(c->family, name) != 0, "TYPE after samples");
                    CHECK(!in_list(c->done, c->n_done, name), "TYPE after samples");
                    snprintf(c->seen_type[c->n_type++], 128, "%s", name);
                    if (c->family[0]) memcpy(c->done[c->n_done++], c->family, sizeof c->family);
                    snprintf(c->family, sizeof c->family, "%s", name);
                    snprintf(c->type, sizeof c->type, "%s", t);
                    CHECK(c->phase == 0, "histogram series left incomplete");
                }
            }
            continue;
        }
        /* name{labels} value [timestamp] */
        size_t nl = strcspn(buf, "{ ");
        CHECK(name_ok(buf, nl, true), "bad sample name");
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)nl, buf);
        const char *q = buf + nl;
        char labels[256] = "", le[64] = "";
        char label_names[16][64];
        unsigned n_labels = 0;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t ln = strcspn(q, "=");
                CHECK(name_ok(q, ln, false) && ln < 64, "bad label name");
                CHECK(q[ln] == '=' && q[ln + 1] == '"', "label without =\"");
                CHECK(n_labels < 16, "too many labels");
                snprintf(label_names[n_labels], 64, "%.*s", (int)ln, q);
                for (unsigned i = 0; i < n_labels; i++) {
                    CHECK(strcmp(label_names[i], label_names[n_labels]) != 0, "duplicate label");
                }
                bool is_le = !strcmp(label_names[n_labels], "le");
                n_labels++;
                const char *v = q + ln + 2, *vs = v;
                while (*v != '"') {
                    CHECK(*v, "unterminated label value");
                    if (*v == '\\') {
                        CHECK(v[1] == '\\' || v[1] == '"' || v[1] == 'n', "bad escape");
                        v++;
                    }
                    v++;
                }
                if (is_le) {
                    snprintf(le, sizeof le, "%.*s", (int)(v - vs), vs);
                } else {
                    size_t l = strlen(labels);
                    snprintf(labels + l, sizeof labels - l, "%.*s,", (int)(v - q + 1), q);
                }
                q = v + 1;
                if (*q == ',') q++;
                CHECK(*q, "unterminated labels");
            }
            q++;
        }
        CHECK(*q == ' ', "no space before value");
        char value_s[64];
        CHECK(sscanf(q + 1, "%63s", value_s) == 1, "no value");
        double value;
        CHECK(value_ok(value_s, &value), "bad value");

        /* Which family: the TYPE line before it, with the histogram suffixes. */
        char series_id[512];
        snprintf(series_id, sizeof series_id, "%s{%s%s}", name, labels, le);
        for (unsigned i = 0; i < c->n_series; i++) {
            CHECK(strcmp(c->series[i], series_id) != 0, "duplicate series");
        }
        CHECK(c->n_series < 4096, "too many series for the checker");
        memcpy(c->series[c->n_series++], series_id, sizeof series_id);
        size_t fl = strlen(c->family);
        const char *suffix = strncmp(name, c->family, fl) == 0 ? name + fl : NULL;
        CHECK(suffix, "sample outside its family (families must be contiguous)");
        if (!strcmp(c->type, "histogram")) {
            CHECK(!strcmp(suffix, "_bucket") || !strcmp(suffix, "_sum") ||
                      !strcmp(suffix, "_count"),
                  "bad histogram sample name");
            /* Each series: buckets with increasing le ending at +Inf, then _sum, then _count. */
            if (!strcmp(suffix, "_bucket")) {
                double lev;
                CHECK(le[0] && value_ok(le, &lev), "bucket without a numeric le");
                CHECK(c->phase != 2, "bucket after _sum");
                if (c->phase == 0) {
                    snprintf(c->hist_key, sizeof c->hist_key, "%s", labels);
                    c->last_le = -INFINITY;
                    c->last_bucket = 0;
                    c->inf_seen = false;
                    c->phase = 1;
                }
                CHECK(!strcmp(c->hist_key, labels), "series changed before _count");
                CHECK(!c->inf_seen && lev > c->last_le, "le not increasing");
                CHECK(value >= c->last_bucket, "buckets not cumulative");
                c->last_le = lev;
                c->last_bucket = value;
                c->inf_seen = isinf(lev) && lev > 0;
            } else if (!strcmp(suffix, "_sum")) {
                CHECK(!le[0], "le on _sum");
                CHECK(c->phase == 1 && c->inf_seen, "_sum without a +Inf bucket before it");
                CHECK(!strcmp(c->hist_key, labels), "_sum of another series");
                c->phase = 2;
            } else {
                CHECK(!le[0], "le on _count");
                CHECK(c->phase == 2 && !strcmp(c->hist_key, labels), "_count without _sum");
                CHECK(value == c->last_bucket, "_count differs from the +Inf bucket");
                c->phase = 0;
            }
        } else {
            CHECK(suffix[0] == '\0', "sample name differs from its family");
            if (!strcmp(c->type, "counter")) CHECK(value >= 0, "negative counter");
        }
    }
    CHECK(c->phase == 0, "histogram series left incomplete at the end");
    return NULL;
}

static void check_exposition(const char *text) {
    const char *err = exposition_error(text);
    if (err) fail_msg("bad exposition: %s\n%s", err, text);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static char *render(sl_metrics_t *r) {
    sl_buf_t b = SL_BUF_INIT;
    sl_metrics_render(r, &b);
    char *s = sl_strdup(b.data ? b.data : "");
    sl_buf_free(&b);
    check_exposition(s);
    return s;
}

static void assert_contains(const char *text, const char *want) {
    if (!strstr(text, want)) fail_msg("missing \"%s\" in:\n%s", want, text);
}

/* Runs fn in a child process and asserts that it aborted (a bug caught by SL_ASSERT). */
static void assert_aborts(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define THREADS 4
#define ADDS    1000000

typedef struct {
    sl_counter_t *c;
    sl_gauge_t *g;
    sl_histogram_t *h;
    pthread_barrier_t start; /* all threads begin together, for contention */
} worker_arg_t;

static void *counter_worker(void *arg) {
    worker_arg_t *a = arg;
    pthread_barrier_wait(&a->start);
    for (int i = 0; i < ADDS; i++)
        sl_counter_inc(a->c);
    return NULL;
}

static void *mixed_worker(void *arg) {
    worker_arg_t *a = arg;
    pthread_barrier_wait(&a->start);
    for (int i = 0; i < ADDS / 10; i++) {
        sl_gauge_add(a->g, 1.0);
        sl_histogram_observe(a->h, (i % 4) * 0.5); /* 0, 0.5, 1, 1.5 */
        sl_counter_add(a->c, 3);
    }
    return NULL;
}

static void run_threads(void *(*fn)(void *), worker_arg_t *a) {
    pthread_barrier_init(&a->start, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&a->start);
}

static void test_counter_no_lost_updates(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    worker_arg_t a = {.c = sl_metrics_counter(r, "sluice_test_total", "Test counter.")};
    run_threads(counter_worker, &a);
    assert_int_equal(sl_counter_value(a.c), (uint64_t)THREADS * ADDS);
    char *text = render(r);
    assert_contains(text, "\nsluice_test_total 4000000\n");
    free(text);
    sl_metrics_free(r);
}

static void test_gauge_histogram_no_lost_updates(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *lbl = "route";
    const char *val = "/v1/predict";
    static const double bounds[] = {0.25, 1};
    worker_arg_t a = {
        .c = sl_metric_counter(sl_metrics_counter_family(r, "c_total", "c", 1, &lbl, 10), &val),
        .g = sl_metrics_gauge(r, "g", "g"),
        .h = sl_metric_histogram(
            sl_metrics_histogram_family(r, "h_seconds", "h", 1, &lbl, 10, bounds, 2), &val),
    };
    run_threads(mixed_worker, &a);
    const uint64_t n = (uint64_t)THREADS * (ADDS / 10);
    assert_int_equal(sl_counter_value(a.c), 3 * n);
    assert_true(sl_gauge_value(a.g) == (double)n);
    assert_int_equal(sl_histogram_count(a.h), n);
    assert_true(sl_histogram_sum(a.h) == (double)n / 4 * (0 + 0.5 + 1 + 1.5)); /* exact in binary */
    char *text = render(r);
    char want[256];
    snprintf(want, sizeof want,
             "h_seconds_bucket{route=\"/v1/predict\",le=\"0.25\"} %llu\n"
             "h_seconds_bucket{route=\"/v1/predict\",le=\"1\"} %llu\n"
             "h_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"} %llu\n",
             (unsigned long long)n / 4, (unsigned long long)n / 4 * 3, (unsigned long long)n);
    assert_contains(text, want);
    free(text);
    sl_metrics_free(r);
}

/* ---- values and rendering --------------------------------------------------------------- */

static void test_histogram_buckets(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    static const double bounds[] = {1, 2, 5, INFINITY}; /* a trailing +Inf is implicit anyway */
    sl_metric_family_t *f =
        sl_metrics_histogram_family(r, "req_seconds", "Latency.", 0, NULL, 1, bounds, 4);
    sl_histogram_t *h = sl_metric_histogram(f, NULL);
    const double obs[] = {0.5, 1, 1.5, 2, 3, 5, 7, 100, -INFINITY, INFINITY, NAN};
    for (unsigned i = 0; i < SL_ARRAY_LEN(obs); i++)
        sl_histogram_observe(h, obs[i]);
    assert_int_equal(sl_histogram_count(h), 10); /* NaN is dropped */
    char *text = render(r);
    /* Bounds are inclusive (le); infinities land in the first and the last bucket. The sum of
     * -Inf and +Inf is NaN, so check the finite part on a second histogram below. */
    assert_contains(text, "# HELP req_seconds Latency.\n# TYPE req_seconds histogram\n"
                          "req_seconds_bucket{le=\"1\"} 3\n"
                          "req_seconds_bucket{le=\"2\"} 5\n"
                          "req_seconds_bucket{le=\"5\"} 7\n"
                          "req_seconds_bucket{le=\"+Inf\"} 10\n"
                          "req_seconds_sum NaN\n"
                          "req_seconds_count 10\n");
    free(text);

    static const double lat[] = {0.005, 0.1};
    f = sl_metrics_histogram_family(r, "lat_seconds", "", 0, NULL, 1, lat, 2);
    h = sl_metric_histogram(f, NULL);
    sl_histogram_observe(h, 0.00390625); /* powers of two: the sum is exact */
    sl_histogram_observe(h, 0.0625);
    sl_histogram_observe(h, 0.25);
    assert_true(sl_histogram_sum(h) == 0.31640625);
    text = render(r);
    assert_contains(text, "# TYPE lat_seconds histogram\n" /* no HELP line for empty help */
                          "lat_seconds_bucket{le=\"0.005\"} 1\n"
                          "lat_seconds_bucket{le=\"0.1\"} 2\n"
                          "lat_seconds_bucket{le=\"+Inf\"} 3\n"
                          "lat_seconds_sum 0.31640625\n"
                          "lat_seconds_count 3\n");
    free(text);

    /* The default latency buckets keep every observation and render parseably. */
    f = sl_metrics_histogram_family(r, "d_seconds", "d", 0, NULL, 1, sl_metrics_latency_buckets,
                                    sl_metrics_latency_buckets_n);
    h = sl_metric_histogram(f, NULL);
    for (int i = 0; i < 1000; i++)
        sl_histogram_observe(h, i / 64.0);
    assert_int_equal(sl_histogram_count(h), 1000);
    text = render(r);
    assert_contains(text, "d_seconds_bucket{le=\"0.0005\"} 1\n");
    assert_contains(text, "d_seconds_bucket{le=\"10\"} 641\n");
    free(text);
    sl_metrics_free(r);
}

static void test_overflow_series(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *names[] = {"model", "version"};
    sl_metric_family_t *f = sl_metrics_counter_family(r, "infer_total", "Inferences.", 2, names, 2);
    const char *a[] = {"fraud", "1.0.0"}, *b[] = {"fraud", "1.1.0"}, *c[] = {"spam", "2.0.0"},
               *d[] = {"ranker", "0.1.0"}, *other[] = {"other", "other"};
    sl_counter_t *ca = sl_metric_counter(f, a), *cb = sl_metric_counter(f, b);
    sl_counter_t *cc = sl_metric_counter(f, c), *cd = sl_metric_counter(f, d);
    assert_ptr_not_equal(ca, cb);
    assert_ptr_equal(cc, cd);                          /* both beyond the limit: overflow */
    assert_ptr_equal(cc, sl_metric_counter(f, other)); /* which is the "other" series */
    assert_ptr_equal(ca, sl_metric_counter(f, a));     /* known series are still found */
    sl_counter_add(ca, 1);
    sl_counter_add(cb, 2);
    sl_counter_add(cc, 3);
    sl_counter_add(cd, 4);
    char *text = render(r);
    assert_contains(text, "# TYPE infer_total counter\n"
                          "infer_total{model=\"fraud\",version=\"1.0.0\"} 1\n"
                          "infer_total{model=\"fraud\",version=\"1.1.0\"} 2\n"
                          "infer_total{model=\"other\",version=\"other\"} 7\n");
    assert_null(strstr(text, "spam"));
    free(text);

    /* Asking for "other" explicitly before the limit makes it an ordinary series, which the
     * overflow then shares: never two series with one label set. */
    const char *lbl = "k";
    sl_metric_family_t *g = sl_metrics_gauge_family(r, "g2", "g", 1, &lbl, 1);
    const char *o = "other", *x = "x";
    sl_gauge_t *go = sl_metric_gauge(g, &o);
    assert_ptr_equal(go, sl_metric_gauge(g, &x));
    sl_metrics_free(r);
}

static void test_escaping(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *lbl = "path";
    sl_metric_family_t *f = sl_metrics_gauge_family(
        r, "esc", "Help with \\ backslash,\nnewline and \"quotes\".", 1, &lbl, 10);
    const char *v1 = "a\\b\"c\nd", *v2 = "bad \xff\xc0 utf8 \xe2\x82",
               *v3 = "caf\xc3\xa9 {x=\"y\"}";
    sl_gauge_set(sl_metric_gauge(f, &v1), 1);
    sl_gauge_set(sl_metric_gauge(f, &v2), 2);
    sl_gauge_set(sl_metric_gauge(f, &v3), 3);
    char *text = render(r);
    assert_contains(text, "# HELP esc Help with \\\\ backslash,\\nnewline and \"quotes\".\n");
    assert_contains(text, "esc{path=\"a\\\\b\\\"c\\nd\"} 1\n");
    assert_contains(text, "esc{path=\"bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\"} 2\n");
    assert_contains(text, "esc{path=\"caf\xc3\xa9 {x=\\\"y\\\"}\"} 3\n");
    /* The sanitized value is the series' identity: asking again finds the same series. */
    assert_ptr_equal(sl_metric_gauge(f, &v2), sl_metric_gauge(f, &v2));
    free(text);
    sl_metrics_free(r);
}

static void test_number_formats(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *lbl = "case";
    sl_metric_family_t *f = sl_metrics_gauge_family(r, "num", "n", 1, &lbl, 20);
    static const struct {
        const char *name;
        double v;
        const char *want;
    } cases[] = {
        {"a_int", 42, "42"},
        {"b_neg", -7, "-7"},
        {"c_zero", -0.0, "0"},
        {"d_tenth", 0.1, "0.1"},
        {"e_third", 1.0 / 3, "0.3333333333333333"},
        {"f_big_int", 1e15, "1000000000000000"},
        {"g_huge", 1e300, "1e+300"},
        {"h_tiny", 1e-9, "1e-09"},
        {"i_pinf", INFINITY, "+Inf"},
        {"j_ninf", -INFINITY, "-Inf"},
        {"k_nan", NAN, "NaN"},
        {"l_frac", 2.5, "2.5"},
    };
    for (unsigned i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_gauge_set(sl_metric_gauge(f, &cases[i].name), cases[i].v);
    }
    char *text = render(r);
    for (unsigned i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char want[128];
        snprintf(want, sizeof want, "num{case=\"%s\"} %s\n", cases[i].name, cases[i].want);
        assert_contains(text, want);
        /* Whatever the spelling, it reads back to the same double. */
        double back = strtod(strstr(text, want) + strlen(want) - strlen(cases[i].want) - 1, NULL);
        if (!isnan(cases[i].v)) assert_true(back == cases[i].v);
    }
    free(text);
    sl_metrics_free(r);
}

static void test_order_is_stable_and_sorted(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *lbl = "code";
    sl_metrics_counter(r, "zeta_total", "z");
    sl_metric_family_t *f = sl_metrics_counter_family(r, "http_total", "h", 1, &lbl, 10);
    sl_metrics_gauge(r, "alpha", "a");
    const char *codes[] = {"503", "200", "404"};
    for (unsigned i = 0; i < 3; i++)
        sl_counter_inc(sl_metric_counter(f, &codes[i]));
    char *first = render(r);
    assert_string_equal(first, "# HELP alpha a\n# TYPE alpha gauge\nalpha 0\n"
                               "# HELP http_total h\n# TYPE http_total counter\n"
                               "http_total{code=\"200\"} 1\n"
                               "http_total{code=\"404\"} 1\n"
                               "http_total{code=\"503\"} 1\n"
                               "# HELP zeta_total z\n# TYPE zeta_total counter\nzeta_total 0\n");
    char *second = render(r);
    assert_string_equal(first, second);
    free(first);
    free(second);
    sl_metrics_free(r);
}

static void test_reregistration(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    const char *names[] = {"a", "b"};
    sl_metric_family_t *f1 = sl_metrics_counter_family(r, "x_total", "x", 2, names, 5);
    sl_metric_family_t *f2 = sl_metrics_counter_family(r, "x_total", "other help", 2, names, 9);
    assert_ptr_equal(f1, f2);
    assert_ptr_equal(sl_metrics_counter(r, "y_total", "y"), sl_metrics_counter(r, "y_total", "y"));
    assert_ptr_equal(sl_metrics_gauge(r, "z", "z"), sl_metrics_gauge(r, "z", "z"));
    const double b[] = {1, 2};
    assert_ptr_equal(sl_metrics_histogram_family(r, "h", "h", 0, NULL, 1, b, 2),
                     sl_metrics_histogram_family(r, "h", "h", 0, NULL, 1, b, 2));
    char *text = render(r);
    assert_contains(text, "# HELP x_total x\n"); /* the first help stays */
    free(text);
    sl_metrics_free(r);
}

static void clash_type(void) {
    sl_metrics_t *r = sl_metrics_new();
    sl_metrics_counter(r, "dup", "d");
    sl_metrics_gauge(r, "dup", "d");
}
static void clash_labels(void) {
    sl_metrics_t *r = sl_metrics_new();
    const char *a = "a", *b = "b";
    sl_metrics_counter_family(r, "dup_total", "d", 1, &a, 5);
    sl_metrics_counter_family(r, "dup_total", "d", 1, &b, 5);
}
static void clash_buckets(void) {
    sl_metrics_t *r = sl_metrics_new();
    const double b1[] = {1, 2}, b2[] = {1, 3};
    sl_metrics_histogram_family(r, "h", "h", 0, NULL, 1, b1, 2);
    sl_metrics_histogram_family(r, "h", "h", 0, NULL, 1, b2, 2);
}
static void bad_name(void) {
    sl_metrics_counter(sl_metrics_new(), "1st_total", "bad");
}
static void bad_name_dash(void) {
    sl_metrics_counter(sl_metrics_new(), "my-metric", "bad");
}
static void bad_label(void) {
    const char *l = "__reserved";
    sl_metrics_counter_family(sl_metrics_new(), "ok_total", "x", 1, &l, 5);
}
static void le_label_on_histogram(void) {
    const char *l = "le";
    const double b[] = {1};
    sl_metrics_histogram_family(sl_metrics_new(), "h", "x", 1, &l, 5, b, 1);
}
static void buckets_not_increasing(void) {
    const double b[] = {1, 1};
    sl_metrics_histogram_family(sl_metrics_new(), "h", "x", 0, NULL, 1, b, 2);
}

static void test_bugs_abort(void **state) {
    assert_aborts(clash_type);
    assert_aborts(clash_labels);
    assert_aborts(clash_buckets);
    assert_aborts(bad_name);
    assert_aborts(bad_name_dash);
    assert_aborts(bad_label);
    assert_aborts(le_label_on_histogram);
    assert_aborts(buckets_not_increasing);
}

static double read_double(void *arg) {
    return *(double *)arg;
}

static double read_twice(void *arg) {
    return *(double *)arg * 2;
}

static void test_gauge_fn(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    double v = 12;
    sl_metrics_gauge_fn(r, "open_connections", "Open connections.", read_double, &v);
    char *text = render(r);
    assert_contains(text, "# TYPE open_connections gauge\nopen_connections 12\n");
    free(text);
    v = 0.5; /* evaluated at scrape time */
    text = render(r);
    assert_contains(text, "\nopen_connections 0.5\n");
    free(text);
    sl_metrics_gauge_fn(r, "open_connections", "Open connections.", read_twice, &v);
    text = render(r);
    assert_contains(text, "\nopen_connections 1\n");
    free(text);
    sl_metrics_free(r);
}

static void test_process_metrics(void **state) {
    sl_metrics_t *r = sl_metrics_default();
    assert_ptr_equal(r, sl_metrics_default());
    sl_counter_inc(sl_metrics_counter(r, "sluice_test_default_total", "t"));
    char *text = render(r);
    assert_contains(text, "# TYPE process_cpu_seconds_total counter\n");
    assert_contains(text, "sluice_build_info{version=\"" SL_VERSION "\"} 1\n");
    assert_contains(text, "sluice_test_default_total 1\n");
    static const char *const names[] = {
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    };
    double v[SL_ARRAY_LEN(names)];
    for (unsigned i = 0; i < SL_ARRAY_LEN(names); i++) {
        char want[96];
        snprintf(want, sizeof want, "\n%s ", names[i]);
        const char *p = strstr(text, want);
        if (!p) fail_msg("no %s in:\n%s", names[i], text);
        v[i] = strtod(p + strlen(want), NULL);
    }
    assert_true(v[0] > 1e5 && v[0] < 4e9);  /* resident: something, not absurd */
    assert_true(v[1] >= v[0]);              /* virtual >= resident */
    assert_true(v[2] >= 0 && v[2] < 3600);  /* CPU seconds */
    assert_true(v[3] >= 3 && v[3] <= v[4]); /* open fds: at least stdio */
    double now = (double)time(NULL);
    assert_true(v[5] > now - 3600 && v[5] <= now + 5); /* started within the hour */
    free(text);
}

static void test_empty_and_unused(void **state) {
    sl_metrics_t *r = sl_metrics_new();
    char *text = render(r);
    assert_string_equal(text, "");
    free(text);
    const char *lbl = "x";
    sl_metrics_counter_family(r, "unused_total", "No series yet.", 1, &lbl, 3);
    text = render(r);
    assert_string_equal(text, "# HELP unused_total No series yet.\n# TYPE unused_total counter\n");
    free(text);
    sl_metrics_free(r);
    sl_metrics_free(NULL);
}

static void test_checker_rejects_bad_text(void **state) {
    static const char *const bad[] = {
        "m 1",                                             /* no final newline */
        "# TYPE m counter\nm{a=\"x\"} 1\nm{a=\"x\"} 2\n",  /* duplicate series */
        "# TYPE m counter\nm -1\n",                        /* negative counter */
        "# TYPE m gauge\nm{a=\"x\\t\"} 1\n",               /* unknown escape */
        "# TYPE m gauge\nm{a=x} 1\n",                      /* unquoted value */
        "# TYPE m gauge\nm{1a=\"x\"} 1\n",                 /* bad label name */
        "# TYPE m gauge\nm 1e\n",                          /* bad value */
        "# TYPE m gauge\nm inf\n",                         /* Go spells it +Inf */
        "# TYPE m gauge\n# TYPE m gauge\nm 1\n",           /* TYPE twice */
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", /* family not contiguous */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",                                              /* not cumulative */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",    /* no +Inf */
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", /* count */
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",            /* le decreasing */
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", /* no _sum */
        "# TYPE m gauge\n\nm 1\n",                                  /* empty line */
        "# TYPE my-metric gauge\nmy-metric 1\n",                    /* bad name */
    };
    for (unsigned i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (!exposition_error(bad[i])) fail_msg("accepted bad exposition %u:\n%s", i, bad[i]);
    }
    assert_null(exposition_error("# HELP h x \\\\ y\\n\n# TYPE h histogram\n"
                                 "h_bucket{a=\"q\\\"\",le=\"0.5\"} 0\n"
                                 "h_bucket{a=\"q\\\"\",le=\"+Inf\"} 2\n"
                                 "h_sum{a=\"q\\\"\"} 1.5\nh_count{a=\"q\\\"\"} 2\n"
                                 "# TYPE g gauge\ng NaN\n"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_rejects_bad_text),
        cmocka_unit_test(test_counter_no_lost_updates),
        cmocka_unit_test(test_gauge_histogram_no_lost_updates),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_overflow_series),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_number_formats),
        cmocka_unit_test(test_order_is_stable_and_sorted),
        cmocka_unit_test(test_reregistration),
        cmocka_unit_test(test_bugs_abort),
        cmocka_unit_test(test_gauge_fn),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_empty_and_unused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
