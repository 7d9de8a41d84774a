/* HTTP routing: exact beats prefix, longest prefix wins, method mismatch is told apart from
 * no match, and the default limits are the documented ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/http.h"
#include "core/http_server_internal.h"

#include <string.h>

static void h1(sl_http_req_t *r, void *c) {}

static sl_http_req_t req(const char *method, const char *path) {
    sl_http_req_t r;
    memset(&r, 0, sizeof r);
    r.method = (sl_str_t){method, strlen(method)};
    r.path = (sl_str_t){path, strlen(path)};
    return r;
}

static const char *match(sl_http_server_t *s, const char *method, const char *path, bool *mm) {
    sl_http_req_t r = req(method, path);
    const http_route_t *rt = http_router_match(s, &r, mm);
    return rt ? (const char *)rt->ctx : NULL;
}

static void test_routing(void **state) {
    sl_http_limits_t lim = sl_http_limits_default();
    sl_http_server_t *s = sl_http_server_new("t", &lim);
    sl_http_server_route(s, "GET", "/v2/*", h1, "v2-prefix", true);
    sl_http_server_route(s, "GET", "/v2/models/*", h1, "models-prefix", true);
    sl_http_server_route(s, "GET", "/v2/health/live", h1, "live", true);
    sl_http_server_route(s, "POST", "/v2/models/x/infer", h1, "infer", true);
    sl_http_server_route(s, NULL, "/any", h1, "any", true);
    bool mm;
    assert_string_equal(match(s, "GET", "/v2/health/live", &mm), "live");
    assert_string_equal(match(s, "GET", "/v2/models/y", &mm), "models-prefix");
    assert_string_equal(match(s, "GET", "/v2/other", &mm), "v2-prefix");
    assert_string_equal(match(s, "POST", "/v2/models/x/infer", &mm), "infer");
    assert_string_equal(match(s, "DELETE", "/any", &mm), "any");
    assert_null(match(s, "GET", "/v3", &mm));
    assert_false(mm);
    assert_null(match(s, "DELETE", "/v2/health/live", &mm));
    assert_true(mm); /* path known, method not: 405 */
    /* A prefix route does not match a shorter path. */
    assert_null(match(s, "GET", "/v2", &mm));
    sl_http_server_free(s);
}

static void test_header_lookup_is_case_insensitive(void **state) {
    sl_http_header_t hs[2] = {
        {{"Content-Type", 12}, {"application/json", 16}},
        {{"X-A", 3}, {"1", 1}},
    };
    sl_http_req_t r = req("GET", "/");
    r.headers = hs;
    r.n_headers = 2;
    sl_str_t v = sl_http_req_header(&r, "content-type");
    assert_int_equal(v.len, 16);
    assert_null(sl_http_req_header(&r, "x-b").ptr);
}

static void test_default_limits(void **state) {
    sl_http_limits_t l = sl_http_limits_default();
    assert_int_equal(l.max_request_line, 8192);
    assert_int_equal(l.max_header_bytes, 32768);
    assert_int_equal(l.max_headers, 100);
    assert_int_equal(l.max_body_bytes, 16 * 1024 * 1024);
    assert_string_equal(sl_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(sl_http_reason(799), "Unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_header_lookup_is_case_insensitive),
        cmocka_unit_test(test_default_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
