/* Unit tests for core/log: every line is one valid JSON object with the documented keys and
 * typed fields, level filtering, the repeat limiter, trace correlation, and escaping of hostile
 * strings. Output goes to an unlinked temporary file that each test reads back whole. */
#include "core/common.h"
#include "core/log.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_LINES 1024

typedef struct {
    int fd;
    char *text;
    char *lines[MAX_LINES];
    cJSON *json[MAX_LINES];
    unsigned n;
} capture_t;

static int setup(void **state) {
    capture_t *c = sl_calloc(1, sizeof *c);
    char path[] = "/tmp/sluice-test-log-XXXXXX";
    c->fd = mkstemp(path);
    assert_true(c->fd >= 0);
    unlink(path);
    sl_log_set_fd(c->fd);
    sl_log_level_set(SL_LOG_INFO);
    sl_log_set_rate_limit(0);
    sl_log_set_trace(NULL, NULL);
    *state = c;
    return 0;
}

static void release(capture_t *c) {
    for (unsigned i = 0; i < c->n; i++)
        cJSON_Delete(c->json[i]);
    free(c->text);
    c->text = NULL;
    c->n = 0;
}

static int teardown(void **state) {
    capture_t *c = *state;
    sl_log_set_fd(2);
    release(c);
    close(c->fd);
    free(c);
    return 0;
}

/* Reads everything logged so far, checks that each line is a JSON object, and starts afresh. */
static unsigned collect(capture_t *c) {
    release(c);
    off_t size = lseek(c->fd, 0, SEEK_END);
    assert_true(size >= 0);
    c->text = sl_calloc(1, (size_t)size + 1);
    assert_int_equal(pread(c->fd, c->text, (size_t)size, 0), size);
    assert_int_equal(ftruncate(c->fd, 0), 0);
    assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0);
    if (size > 0) assert_int_equal(c->text[size - 1], '\n'); /* whole lines only */
    char *save = NULL;
    for (char *l = strtok_r(c->text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        assert_true(c->n < MAX_LINES);
        c->lines[c->n] = l;
        c->json[c->n] = cJSON_Parse(l);
        if (!c->json[c->n] || !cJSON_IsObject(c->json[c->n])) fail_msg("not JSON: %s", l);
        c->n++;
    }
    return c->n;
}

static const char *str_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("no string field %s", key);
    return v->valuestring;
}

static double num_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number field %s", key);
    return v->valuedouble;
}

static void test_line_shape_and_fields(void **state) {
    capture_t *c = *state;
    time_t before = time(NULL);
    SL_INFO("test", "request done", SL_LF_S("route", "/v1/predict"), SL_LF_I("delta", -42),
            SL_LF_U("bytes", UINT64_MAX), SL_LF_D("latency", 0.125), SL_LF_B("cached", true),
            SL_LF_B("retried", false));
    assert_int_equal(collect(c), 1);
    const cJSON *j = c->json[0];
    assert_string_equal(str_field(j, "level"), "info");
    assert_string_equal(str_field(j, "component"), "test");
    assert_string_equal(str_field(j, "msg"), "request done");
    assert_string_equal(str_field(j, "route"), "/v1/predict");
    assert_true(num_field(j, "delta") == -42);
    assert_true(num_field(j, "latency") == 0.125);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cached")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "retried")));
    /* A double loses the low digits of a uint64: check the text itself. */
    assert_non_null(strstr(c->lines[0], "\"bytes\":18446744073709551615"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "trace_id"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "suppressed"));

    /* ts: RFC 3339 UTC with microseconds, and about now. */
    const char *ts = str_field(j, "ts");
    assert_int_equal(strlen(ts), strlen("2024-01-02T03:04:05.123456Z"));
    struct tm tm = {0};
    unsigned usec;
    int end = 0;
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%6uZ%n", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &usec, &end),
                     7);
    assert_int_equal(end, (int)strlen(ts));
    assert_true(usec < 1000000);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    assert_true(t >= before - 1 && t <= time(NULL) + 1);
}

static void test_special_doubles_stay_json(void **state) {
    capture_t *c = *state;
    SL_WARN("test", "odd numbers", SL_LF_D("nan", NAN), SL_LF_D("inf", INFINITY),
            SL_LF_D("ninf", -INFINITY), SL_LF_D("tiny", 5e-324), SL_LF_D("big", 1.7e308));
    assert_int_equal(collect(c), 1);
    const cJSON *j = c->json[0];
    assert_string_equal(str_field(j, "level"), "warn");
    /* JSON has no NaN or infinities: they travel as strings. */
    assert_non_null(strstr(str_field(j, "nan"), "nan"));
    assert_non_null(strstr(str_field(j, "inf"), "inf"));
    assert_non_null(strstr(str_field(j, "ninf"), "-inf"));
    assert_true(num_field(j, "tiny") == 5e-324);
    assert_true(num_field(j, "big") == 1.7e308); /* finite: a number, full precision */
}

static void test_level_filtering(void **state) {
    capture_t *c = *state;
    sl_log_level_set(SL_LOG_WARN);
    assert_int_equal(sl_log_level_get(), SL_LOG_WARN);
    SL_DEBUG("test", "debug line");
    SL_INFO("test", "info line");
    sl_log_fields(SL_LOG_INFO, "test", "direct info line", NULL, 0); /* the function filters too */
    SL_WARN("test", "warn line");
    SL_ERROR("test", "error line", SL_LF_I("code", 7));
    assert_int_equal(collect(c), 2);
    assert_string_equal(str_field(c->json[0], "msg"), "warn line");
    assert_string_equal(str_field(c->json[1], "level"), "error");
    assert_true(num_field(c->json[1], "code") == 7);

    sl_log_level_set(SL_LOG_DEBUG);
    SL_DEBUG("test", "debug line");
    assert_int_equal(collect(c), 1);
    assert_string_equal(str_field(c->json[0], "level"), "debug");

    sl_log_level_t lvl;
    assert_int_equal(sl_log_level_parse("error", &lvl), SL_OK);
    assert_int_equal(lvl, SL_LOG_ERROR);
    assert_int_equal(sl_log_level_parse("debug", &lvl), SL_OK);
    assert_int_equal(lvl, SL_LOG_DEBUG);
    assert_int_equal(sl_log_level_parse("verbose", &lvl), SL_EINVAL);
    assert_int_equal(sl_log_level_parse("", &lvl), SL_EINVAL);
    assert_string_equal(sl_log_level_name(SL_LOG_WARN), "warn");
}

static void log_burst_line(void) {
    SL_INFO("test", "same line again", SL_LF_I("n", 1));
}

static void test_repeat_limiter(void **state) {
    capture_t *c = *state;
    const uint32_t rate = 3;
    sl_log_set_rate_limit(rate);
    uint64_t suppressed_before = sl_log_suppressed_total();
    unsigned calls = 0;
    for (unsigned i = 0; i < rate + 4; i++, calls++)
        log_burst_line();
    SL_INFO("test", "another line"); /* another site is not limited by this one */
    assert_int_equal(collect(c), rate + 1);
    for (unsigned i = 0; i < rate; i++) {
        assert_string_equal(str_field(c->json[i], "msg"), "same line again");
        assert_null(cJSON_GetObjectItemCaseSensitive(c->json[i], "suppressed"));
    }
    assert_string_equal(str_field(c->json[rate], "msg"), "another line");
    assert_int_equal(sl_log_suppressed_total() - suppressed_before, 4);

    /* Once the second is over, the next line gets through and says how many were dropped
     * (including any tried while polling). */
    unsigned written = rate;
    uint64_t deadline = sl_now_ms() + 5000;
    while (collect(c) == 0) {
        assert_true(sl_now_ms() < deadline);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        log_burst_line();
        calls++;
    }
    assert_int_equal(c->n, 1);
    written++;
    assert_true(num_field(c->json[0], "suppressed") == calls - written);
    assert_int_equal(sl_log_suppressed_total() - suppressed_before, calls - written);

    /* 0 turns the limiter off. */
    sl_log_set_rate_limit(0);
    for (unsigned i = 0; i < 50; i++)
        log_burst_line();
    assert_int_equal(collect(c), 50);
}

static void *log_from_thread(void *arg) {
    SL_INFO("test", "from another thread");
    return NULL;
}

static void test_trace_ids(void **state) {
    capture_t *c = *state;
    sl_log_set_trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    SL_INFO("test", "traced");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, log_from_thread, NULL), 0);
    pthread_join(t, NULL);
    sl_log_set_trace(NULL, NULL);
    SL_INFO("test", "untraced");
    assert_int_equal(collect(c), 3);
    assert_string_equal(str_field(c->json[0], "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str_field(c->json[0], "span_id"), "00f067aa0ba902b7");
    /* The trace context belongs to the thread that set it. */
    assert_string_equal(str_field(c->json[1], "msg"), "from another thread");
    assert_null(cJSON_GetObjectItemCaseSensitive(c->json[1], "trace_id"));
    assert_null(cJSON_GetObjectItemCaseSensitive(c->json[2], "trace_id"));
    assert_null(cJSON_GetObjectItemCaseSensitive(c->json[2], "span_id"));
}

static void test_hostile_strings(void **state) {
    capture_t *c = *state;
    SL_ERROR("te\"st", "msg with \"quotes\"\nand a newline",
             SL_LF_S("value", "a\"b\\c\nd\re\tf\x01g\x7fh"), SL_LF_S("bad_utf8", "x\xff\xfey\xc3"),
             SL_LF_S("overlong", "\xc0\xaf\xe0\x80\xaf"), SL_LF_S("surrogate", "\xed\xa0\x80"),
             SL_LF_S("unicode", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
             SL_LF_S("we\"ird\nkey", "v"), SL_LF_S("null", NULL));
    assert_int_equal(collect(c), 1); /* the newlines did not split the line */
    const cJSON *j = c->json[0];
    assert_string_equal(str_field(j, "component"), "te\"st");
    assert_string_equal(str_field(j, "msg"), "msg with \"quotes\"\nand a newline");
    assert_string_equal(str_field(j, "value"), "a\"b\\c\nd\re\tf\x01g\x7fh");
    assert_string_equal(str_field(j, "bad_utf8"), "x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd");
    assert_string_equal(str_field(j, "overlong"),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str_field(j, "surrogate"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str_field(j, "unicode"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_string_equal(str_field(j, "we\"ird\nkey"), "v");
    assert_string_equal(str_field(j, "null"), "");
    /* No raw control bytes or invalid UTF-8 reach the output. */
    for (const unsigned char *p = (const unsigned char *)c->lines[0]; *p; p++) {
        assert_true(*p >= 0x20 && *p != 0x7f && *p != 0xff && *p != 0xfe && *p != 0xc0);
    }
}

#define THREADS          4
#define LINES_PER_THREAD 200

static void *log_many(void *arg) {
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        SL_INFO("test", "concurrent", SL_LF_I("thread", (intptr_t)arg), SL_LF_I("i", i),
                SL_LF_S("pad", "padding padding padding padding padding padding padding"));
    }
    return NULL;
}

static void test_concurrent_lines_stay_whole(void **state) {
    capture_t *c = *state;
    pthread_t t[THREADS];
    for (intptr_t i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, log_many, (void *)i), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(collect(c), THREADS * LINES_PER_THREAD); /* each parsed as one object */
    int seen[THREADS] = {0};
    for (unsigned i = 0; i < c->n; i++) {
        int th = (int)num_field(c->json[i], "thread");
        assert_true(th >= 0 && th < THREADS);
        assert_true(num_field(c->json[i], "i") == seen[th]); /* in order within a thread */
        seen[th]++;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_shape_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_doubles_stay_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeat_limiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lines_stay_whole, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
