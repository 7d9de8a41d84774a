/* Unit tests for gateway/accesslog: config helpers (percentages in basis points, names, the
 * never-logged credentials with the message the policy parser shows), sampling per status class
 * with injected randomness, and the written line read back as JSON: every entry key, configured
 * body fields and headers, scrubbing by salted SHA-256 (checked against an independent digest)
 * or redaction, hostile paths escaped and cut, values bounded, and no line eaten by the log's
 * repeat limiter. Output goes to an unlinked temporary file read back after each write. */
#include "core/common.h"
#include "core/log.h"
#include "gateway/accesslog.h"

#include <cJSON.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_LINES 256

static int g_fd = -1;

static int setup(void **state) {
    char path[] = "/tmp/sluice-test-accesslog-XXXXXX";
    g_fd = mkstemp(path);
    assert_true(g_fd >= 0);
    unlink(path);
    sl_log_set_fd(g_fd);
    sl_log_level_set(SL_LOG_INFO);
    sl_log_set_rate_limit(20);
    sl_log_set_trace(NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    sl_log_set_fd(2);
    close(g_fd);
    return 0;
}

/* Reads and empties what was logged: parses every line (each must be one JSON object) into
 * out[], returns the count. The caller frees each with cJSON_Delete. */
static unsigned collect(cJSON **out, unsigned max) {
    off_t size = lseek(g_fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = sl_calloc(1, (size_t)size + 1);
    assert_int_equal(pread(g_fd, text, (size_t)size, 0), size);
    assert_int_equal(ftruncate(g_fd, 0), 0);
    assert_int_equal(lseek(g_fd, 0, SEEK_SET), 0);
    if (size > 0) assert_int_equal(text[size - 1], '\n');
    unsigned n = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        if (!j || !cJSON_IsObject(j)) fail_msg("not a JSON object: %s", l);
        if (n < max) {
            out[n] = j;
        } else {
            cJSON_Delete(j);
        }
        n++;
    }
    free(text);
    return n;
}

/* Exactly one line was logged: returns it. */
static cJSON *one_line(void) {
    cJSON *l[2] = {NULL, NULL};
    unsigned n = collect(l, 2);
    if (n != 1) fail_msg("expected one line, got %u", n);
    return l[0];
}

static const char *str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* ---- lookups the gateway would provide ---- */

typedef struct {
    const char *names[8];
    const char *values[8];
    size_t lens[8]; /* 0: strlen */
    unsigned n;
    unsigned calls;
} kv_t;

static bool kv_lookup(void *ctx, const char *name, sl_str_t *out) {
    kv_t *kv = ctx;
    kv->calls++;
    for (unsigned i = 0; i < kv->n; i++) {
        if (strcasecmp(kv->names[i], name) == 0) {
            out->ptr = kv->values[i];
            out->len = kv->lens[i] ? kv->lens[i] : strlen(kv->values[i]);
            return true;
        }
    }
    return false;
}

typedef struct {
    kv_t fields, headers;
} req_t;

static bool field_cb(void *ctx, const char *name, sl_str_t *out) {
    return kv_lookup(&((req_t *)ctx)->fields, name, out);
}

static bool header_cb(void *ctx, const char *name, sl_str_t *out) {
    return kv_lookup(&((req_t *)ctx)->headers, name, out);
}

static sl_access_entry_t base_entry(void) {
    static const char path[] = "/v1/predict/fraud";
    return (sl_access_entry_t){
        .method = "POST",
        .path = path,
        .path_len = sizeof path - 1,
        .status = 200,
        .duration_us = 1234,
        .upstream_us = 1000,
        .bytes_in = 56,
        .bytes_out = 78,
        .key_id = "k_abc",
        .tenant = "acme",
        .model = "fraud",
        .version = "3",
        .endpoint = "10.0.0.7:9001",
        .route = "predict",
        .outcome = "ok",
        .retries = 1,
        .client_addr = "192.0.2.1:5555",
    };
}

/* The expected scrub: "sha256:" + 12 hex of SHA-256(salt || value), computed here on its own. */
static void expected_hash(const void *salt, size_t salt_len, const char *value, char out[20]) {
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, salt, salt_len), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, value, strlen(value)), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, md, &md_len), 1);
    EVP_MD_CTX_free(ctx);
    strcpy(out, "sha256:");
    for (int i = 0; i < 6; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

/* ---- tests ---- */

static void test_defaults_and_percentages(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    assert_true(c.enabled);
    assert_int_equal(c.sample_bp, 10000);
    assert_int_equal(c.errors_sample_bp, 10000);
    assert_int_equal(c.rejections_sample_bp, 100);
    assert_int_equal(c.n_fields + c.n_headers + c.n_scrub + c.salt_len, 0);
    assert_int_equal(sl_access_log_cfg_validate(&c, NULL, 0), 0);

    static const struct {
        const char *s;
        int rc;
        uint32_t bp;
    } cases[] = {
        {"100", 0, 10000},     {"100.00", 0, 10000},   {"0", 0, 0},
        {"0.01", 0, 1},        {"12.5", 0, 1250},      {"1", 0, 100},
        {"99.99", 0, 9999},    {"007", 0, 700},        {"100.01", SL_ERANGE, 0},
        {"101", SL_ERANGE, 0}, {"1000", SL_ERANGE, 0}, {"0.001", SL_EINVAL, 0},
        {"1.", SL_EINVAL, 0},  {".5", SL_EINVAL, 0},   {"-1", SL_EINVAL, 0},
        {"", SL_EINVAL, 0},    {" 5", SL_EINVAL, 0},   {"5%", SL_EINVAL, 0},
        {"1e2", SL_EINVAL, 0}, {"abc", SL_EINVAL, 0},  {"0000", SL_EINVAL, 0},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        uint32_t bp = 424242;
        int rc = sl_access_log_percent_parse(cases[i].s, &bp);
        if (rc != cases[i].rc) fail_msg("'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 0) assert_int_equal(bp, cases[i].bp);
    }
    sl_access_scrub_mode_t m;
    assert_int_equal(sl_access_log_scrub_mode_parse("redact", &m), 0);
    assert_int_equal(m, SL_ACCESS_SCRUB_REDACT);
    assert_int_equal(sl_access_log_scrub_mode_parse("hash", &m), 0);
    assert_int_equal(m, SL_ACCESS_SCRUB_HASH);
    assert_int_equal(sl_access_log_scrub_mode_parse("HASH", &m), SL_EINVAL);
    assert_int_equal(sl_access_log_scrub_mode_parse("drop", &m), SL_EINVAL);
}

static void test_names_and_never_logged(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    char err[128];
    assert_int_equal(sl_access_log_cfg_add_header(&c, "User-Agent", err, sizeof err), 0);
    assert_string_equal(c.headers[0], "user-agent"); /* headers are kept lowercase */
    assert_int_equal(sl_access_log_cfg_add_header(&c, "user-agent", err, sizeof err), SL_EEXISTS);
    assert_string_equal(err, "access_log.headers: 'user-agent' is listed twice");

    assert_int_equal(sl_access_log_cfg_add_header(&c, "Authorization", err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "access_log.headers: authorization is never logged");
    static const char *const creds[] = {"authorization", "Proxy-Authorization", "cookie",
                                        "X-API-Key", "api_key"};
    for (size_t i = 0; i < SL_ARRAY_LEN(creds); i++) {
        assert_int_equal(sl_access_log_cfg_add_header(&c, creds[i], err, sizeof err), SL_EINVAL);
        assert_non_null(strstr(err, "is never logged"));
        assert_int_equal(sl_access_log_cfg_add_field(&c, creds[i], err, sizeof err), SL_EINVAL);
        assert_non_null(strstr(err, "access_log.fields:"));
    }
    assert_int_equal(c.n_headers, 1);
    assert_int_equal(c.n_fields, 0);

    assert_int_equal(sl_access_log_cfg_add_field(&c, "", err, sizeof err), SL_EINVAL);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "a b", err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "[A-Za-z0-9_.-]"));
    assert_int_equal(sl_access_log_cfg_add_field(&c, "x\"y", err, sizeof err), SL_EINVAL);
    assert_int_equal(sl_access_log_cfg_add_field(&c, NULL, err, sizeof err), SL_EINVAL);
    char long_name[SL_ACCESS_LOG_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(sl_access_log_cfg_add_field(&c, long_name, err, sizeof err), SL_EINVAL);
    long_name[SL_ACCESS_LOG_NAME_MAX] = '\0'; /* exactly the limit */
    assert_int_equal(sl_access_log_cfg_add_field(&c, long_name, err, sizeof err), 0);
    for (int i = 1; i < SL_ACCESS_LOG_MAX_NAMES; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(sl_access_log_cfg_add_field(&c, name, err, sizeof err), 0);
    }
    assert_int_equal(sl_access_log_cfg_add_field(&c, "one_more", err, sizeof err), SL_ELIMIT);
    assert_string_equal(err, "access_log.fields: at most 16 names");

    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "user_id", SL_ACCESS_SCRUB_HASH, NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "USER_ID", SL_ACCESS_SCRUB_REDACT, NULL, 0),
                     SL_EEXISTS);
    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "x", (sl_access_scrub_mode_t)7, NULL, 0),
                     SL_EINVAL);
    assert_int_equal(sl_access_log_cfg_set_salt(&c, "", 0, err, sizeof err), SL_EINVAL);
    char big_salt[SL_ACCESS_LOG_SALT_MAX + 1] = {0};
    assert_int_equal(sl_access_log_cfg_set_salt(&c, big_salt, sizeof big_salt, NULL, 0), SL_EINVAL);
    assert_int_equal(sl_access_log_cfg_set_salt(&c, "pepper", 6, NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), 0);
    /* err is optional and cut to err_len. */
    char tiny[8];
    assert_int_equal(sl_access_log_cfg_add_header(&c, "cookie", tiny, sizeof tiny), SL_EINVAL);
    assert_string_equal(tiny, "access_");
}

static void test_validate_hand_filled(void **state) {
    sl_access_log_cfg_t c;
    char err[128];
    sl_access_log_cfg_init(&c);
    strcpy(c.headers[c.n_headers++], "authorization");
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "access_log.headers: authorization is never logged");

    sl_access_log_cfg_init(&c);
    c.rejections_sample_bp = 10001;
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "access_log.rejections_sample_percent: must be between 0 and 100");

    sl_access_log_cfg_init(&c);
    strcpy(c.fields[c.n_fields++], "amount");
    strcpy(c.fields[c.n_fields++], "Amount");
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "listed twice"));

    sl_access_log_cfg_init(&c);
    c.n_headers = SL_ACCESS_LOG_MAX_NAMES + 1;
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);

    sl_access_log_cfg_init(&c);
    memset(c.fields[0], 'a', sizeof c.fields[0]); /* not terminated within the slot */
    c.n_fields = 1;
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);

    sl_access_log_cfg_init(&c);
    strcpy(c.scrub[0].name, "x");
    c.scrub[0].mode = (sl_access_scrub_mode_t)3;
    c.n_scrub = 1;
    assert_int_equal(sl_access_log_cfg_validate(&c, err, sizeof err), SL_EINVAL);
}

static void test_sampling(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    /* Defaults: every success and error, 1% of rejections. */
    unsigned ok = 0, err5 = 0, rej429 = 0, rej401 = 0;
    for (uint64_t r = 0; r < 100000; r++) {
        ok += sl_access_log_sampled(&c, 200, r);
        err5 += sl_access_log_sampled(&c, 503, r);
        rej429 += sl_access_log_sampled(&c, 429, r);
        rej401 += sl_access_log_sampled(&c, 401, r);
    }
    assert_int_equal(ok, 100000);
    assert_int_equal(err5, 100000);
    assert_int_equal(rej429, 1000);
    assert_int_equal(rej401, 1000);
    assert_true(sl_access_log_sampled(&c, 429, 99));
    assert_false(sl_access_log_sampled(&c, 429, 100));
    assert_false(sl_access_log_sampled(&c, 429, 10099 + 1));

    /* Two decimals: 0.25% of 2xx, 50% of other errors (403 and 404 are errors, not rejections). */
    assert_int_equal(sl_access_log_percent_parse("0.25", &c.sample_bp), 0);
    c.errors_sample_bp = 5000;
    c.rejections_sample_bp = 0;
    unsigned s2 = 0, s4 = 0, s403 = 0, r0 = 0;
    for (unsigned i = 0; i < 200000; i++) {
        uint64_t r = sl_rand64();
        s2 += sl_access_log_sampled(&c, 201, r);
        s4 += sl_access_log_sampled(&c, 404, r);
        s403 += sl_access_log_sampled(&c, 403, r);
        r0 += sl_access_log_sampled(&c, 429, r);
    }
    assert_in_range(s2, 350, 650);      /* 500 expected */
    assert_in_range(s4, 98000, 102000); /* 100000 expected */
    assert_int_equal(s4, s403);         /* same class, same randomness */
    assert_int_equal(r0, 0);
    c.enabled = false;
    assert_false(sl_access_log_sampled(&c, 200, 0));
    sl_access_entry_t e = base_entry();
    assert_false(sl_access_log_write(&c, &e, 0));
    cJSON *l[1];
    assert_int_equal(collect(l, 1), 0);
}

static void test_line_keys(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    sl_access_entry_t e = base_entry();
    e.degraded = true;
    e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    e.span_id = "00f067aa0ba902b7";
    assert_true(sl_access_log_write(&c, &e, 0));
    cJSON *j = one_line();
    assert_string_equal(str(j, "component"), "access");
    assert_string_equal(str(j, "level"), "info");
    assert_string_equal(str(j, "msg"), "request");
    assert_non_null(str(j, "ts"));
    assert_string_equal(str(j, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str(j, "span_id"), "00f067aa0ba902b7");
    assert_string_equal(str(j, "method"), "POST");
    assert_string_equal(str(j, "path"), "/v1/predict/fraud");
    assert_null(cJSON_GetObjectItem(j, "path_truncated"));
    assert_true(num(j, "status") == 200);
    assert_true(num(j, "duration_us") == 1234);
    assert_true(num(j, "upstream_us") == 1000);
    assert_true(num(j, "bytes_in") == 56);
    assert_true(num(j, "bytes_out") == 78);
    assert_string_equal(str(j, "key_id"), "k_abc");
    assert_string_equal(str(j, "tenant"), "acme");
    assert_string_equal(str(j, "model"), "fraud");
    assert_string_equal(str(j, "version"), "3");
    assert_string_equal(str(j, "endpoint"), "10.0.0.7:9001");
    assert_string_equal(str(j, "route"), "predict");
    assert_string_equal(str(j, "outcome"), "ok");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "degraded")));
    assert_true(num(j, "retries") == 1);
    assert_string_equal(str(j, "client"), "192.0.2.1:5555");
    cJSON_Delete(j);

    /* Absent strings leave their keys out; the thread's trace context is used by default. */
    sl_access_entry_t m = {.status = 429, .outcome = "rate_limited"};
    sl_log_set_trace("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    assert_true(sl_access_log_write(&c, &m, 0));
    sl_log_set_trace(NULL, NULL);
    j = one_line();
    assert_string_equal(str(j, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_null(cJSON_GetObjectItem(j, "method"));
    assert_null(cJSON_GetObjectItem(j, "path"));
    assert_null(cJSON_GetObjectItem(j, "key_id"));
    assert_string_equal(str(j, "outcome"), "rate_limited");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "degraded")));
    cJSON_Delete(j);

    /* Below the log level nothing is written. */
    sl_log_level_set(SL_LOG_WARN);
    assert_false(sl_access_log_write(&c, &e, 0));
    sl_log_level_set(SL_LOG_INFO);
    cJSON *none[1];
    assert_int_equal(collect(none, 1), 0);
}

static void test_fields_headers_and_scrub(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "amount", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "user_id", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "email", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "absent", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_header(&c, "user-agent", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_header(&c, "X-User-Id", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "USER_ID", SL_ACCESS_SCRUB_HASH, NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "x-user-id", SL_ACCESS_SCRUB_HASH, NULL, 0),
                     0);
    assert_int_equal(sl_access_log_cfg_add_scrub(&c, "email", SL_ACCESS_SCRUB_REDACT, NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_set_salt(&c, "pepper", 6, NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_validate(&c, NULL, 0), 0);

    req_t rq = {
        .fields = {.names = {"amount", "user_id", "email"},
                   .values = {"125.50", "u-1001", "ann@example.com"},
                   .n = 3},
        .headers = {.names = {"User-Agent", "x-user-id", "authorization"},
                    .values = {"curl/8.0", "u-1001", "Bearer sk_live_secret"},
                    .n = 3},
    };
    sl_access_entry_t e = base_entry();
    e.field_cb = field_cb;
    e.header_cb = header_cb;
    e.cb_ctx = &rq;
    assert_true(sl_access_log_write(&c, &e, 0));
    cJSON *j = one_line();
    char want[20];
    expected_hash("pepper", 6, "u-1001", want);
    assert_string_equal(str(j, "field.amount"), "125.50");
    assert_string_equal(str(j, "field.user_id"), want);
    assert_string_equal(str(j, "header.x-user-id"), want); /* equal values still correlate */
    assert_string_equal(str(j, "field.email"), "[redacted]");
    assert_string_equal(str(j, "header.user-agent"), "curl/8.0");
    assert_null(cJSON_GetObjectItem(j, "field.absent"));
    char *text = cJSON_PrintUnformatted(j);
    assert_null(strstr(text, "u-1001"));
    assert_null(strstr(text, "ann@"));
    assert_null(strstr(text, "secret"));
    free(text);
    cJSON_Delete(j);
    char got[20];
    sl_access_log_hash(&c, "u-1001", 6, got);
    assert_string_equal(got, want);

    /* Without a configured salt the per-process one is used: stable within the process, not
     * the unsalted digest. */
    sl_access_log_cfg_t d = c;
    d.salt_len = 0;
    char a[20], b[20], plain[20];
    sl_access_log_hash(&d, "u-1001", 6, a);
    sl_access_log_hash(&d, "u-1001", 6, b);
    expected_hash("", 0, "u-1001", plain);
    assert_string_equal(a, b);
    assert_string_not_equal(a, plain);
    assert_string_not_equal(a, want);
    assert_int_equal(strlen(a), 19);

    /* A config that slipped past validation still never logs credentials. */
    sl_access_log_cfg_t bad;
    sl_access_log_cfg_init(&bad);
    strcpy(bad.headers[bad.n_headers++], "authorization");
    strcpy(bad.headers[bad.n_headers++], "user-agent");
    strcpy(bad.fields[bad.n_fields++], "API_KEY");
    rq.fields.names[0] = "api_key";
    rq.fields.values[0] = "sk_live_secret2";
    rq.headers.calls = 0;
    assert_true(sl_access_log_write(&bad, &e, 0));
    j = one_line();
    text = cJSON_PrintUnformatted(j);
    assert_null(strstr(text, "secret"));
    assert_null(strstr(text, "authorization"));
    assert_string_equal(str(j, "header.user-agent"), "curl/8.0");
    assert_int_equal(rq.headers.calls, 1); /* the credential was not even looked up */
    free(text);
    cJSON_Delete(j);
}

static bool every_name(void *ctx, const char *name, sl_str_t *out) {
    out->ptr = name;
    out->len = strlen(name);
    return true;
}

static void test_hostile_path_and_bounded_values(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    assert_int_equal(sl_access_log_cfg_add_header(&c, "x-note", NULL, 0), 0);
    assert_int_equal(sl_access_log_cfg_add_field(&c, "blob", NULL, 0), 0);

    /* Quotes, a forged second line, controls, a NUL, bad UTF-8: one valid line, read back. */
    static const char evil[] = "/v2/models/\"x\"}\n{\"level\":\"error\"}\r\t\x01\0\xff..%2f..";
    sl_access_entry_t e = base_entry();
    e.path = evil;
    e.path_len = sizeof evil - 1;
    assert_true(sl_access_log_write(&c, &e, 0));
    cJSON *j = one_line(); /* one line: the newline was escaped */
    const char *p = str(j, "path");
    assert_non_null(p);
    static const char head[] = "/v2/models/\"x\"}\n{\"level\":\"error\"}\r\t\x01";
    assert_memory_equal(p, head, sizeof head - 1);
    /* The NUL byte and the invalid byte both read back as U+FFFD. */
    assert_string_equal(p + sizeof head - 1, "\xef\xbf\xbd\xef\xbf\xbd..%2f..");
    assert_string_equal(str(j, "level"), "info");
    cJSON_Delete(j);

    /* A long path is cut at 256 bytes and flagged; a 2-byte character is never split. */
    char longp[1000];
    memset(longp, 'a', sizeof longp);
    longp[255] = '\xc3'; /* "é" straddles the cut: bytes 255 and 256 */
    longp[256] = '\xa9';
    e.path = longp;
    e.path_len = sizeof longp;
    static char note[2000], blob[5000];
    memset(note, 'n', sizeof note - 1);
    memset(blob, 'b', sizeof blob - 1);
    req_t rq = {.fields = {.names = {"blob"}, .values = {blob}, .n = 1},
                .headers = {.names = {"x-note"}, .values = {note}, .n = 1}};
    e.field_cb = field_cb;
    e.header_cb = header_cb;
    e.cb_ctx = &rq;
    char model[600];
    memset(model, 'm', sizeof model - 1);
    model[sizeof model - 1] = '\0';
    e.model = model;
    assert_true(sl_access_log_write(&c, &e, 0));
    j = one_line();
    p = str(j, "path");
    assert_int_equal(strlen(p), 255);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "path_truncated")));
    assert_int_equal(strlen(str(j, "header.x-note")), 256);
    assert_int_equal(strlen(str(j, "field.blob")), 256);
    assert_int_equal(strlen(str(j, "model")), 256);
    cJSON_Delete(j);

    /* At most 16 headers and 16 fields: the config cannot hold more, and the writer never
     * reads past n_* even if a hand-filled config claims more. */
    sl_access_log_cfg_t full;
    sl_access_log_cfg_init(&full);
    for (int i = 0; i < SL_ACCESS_LOG_MAX_NAMES; i++) {
        char name[16];
        snprintf(name, sizeof name, "h%d", i);
        assert_int_equal(sl_access_log_cfg_add_header(&full, name, NULL, 0), 0);
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(sl_access_log_cfg_add_field(&full, name, NULL, 0), 0);
    }
    full.n_fields = 1000;
    full.n_scrub = 1000;
    e.field_cb = e.header_cb = every_name;
    assert_true(sl_access_log_write(&full, &e, 0));
    j = one_line();
    assert_string_equal(str(j, "field.f15"), "f15");
    assert_string_equal(str(j, "header.h15"), "h15");
    cJSON_Delete(j);
}

static void test_all_names_present(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    for (int i = 0; i < SL_ACCESS_LOG_MAX_NAMES; i++) {
        char name[16];
        snprintf(name, sizeof name, "h%d", i);
        assert_int_equal(sl_access_log_cfg_add_header(&c, name, NULL, 0), 0);
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(sl_access_log_cfg_add_field(&c, name, NULL, 0), 0);
    }
    sl_access_entry_t e = base_entry();
    e.field_cb = e.header_cb = every_name;
    e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    e.span_id = "00f067aa0ba902b7";
    assert_true(sl_access_log_write(&c, &e, 0));
    cJSON *j = one_line();
    assert_string_equal(str(j, "header.h15"), "h15");
    assert_string_equal(str(j, "field.f15"), "f15");
    assert_string_equal(str(j, "field.f0"), "f0");
    assert_int_equal(cJSON_GetArraySize(j), 4 + 2 + 17 + 32); /* log keys, trace, entry, names */
    cJSON_Delete(j);
}

/* Access lines come from one call site at request rate: the log's repeat limiter (here 20
 * lines/s) must not eat them. */
static void test_not_rate_limited(void **state) {
    sl_access_log_cfg_t c;
    sl_access_log_cfg_init(&c);
    sl_access_entry_t e = base_entry();
    for (int i = 0; i < 200; i++)
        assert_true(sl_access_log_write(&c, &e, (uint64_t)i));
    cJSON *l[MAX_LINES];
    unsigned n = collect(l, MAX_LINES);
    assert_int_equal(n, 200);
    for (unsigned i = 0; i < n; i++) {
        assert_null(cJSON_GetObjectItem(l[i], "suppressed"));
        cJSON_Delete(l[i]);
    }
    assert_int_equal(sl_log_suppressed_total(), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_percentages),
        cmocka_unit_test(test_names_and_never_logged),
        cmocka_unit_test(test_validate_hand_filled),
        cmocka_unit_test_setup_teardown(test_sampling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields_headers_and_scrub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_path_and_bounded_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_names_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_rate_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
