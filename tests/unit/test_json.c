/* Unit tests of core/json: limits (nesting, size), strictness (trailing data, control bytes,
 * UTF-8), error offsets, the typed getters' messages and printing. */
#include "core/json.h"

#include "core/common.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, cJSON **out, char *err) {
    return sl_json_parse(s, strlen(s), out, err, 256);
}

static void expect_error(const char *s, int want_rc, const char *want_msg) {
    cJSON *j = (cJSON *)1;
    char err[256] = "";
    int rc = parse(s, &j, err);
    if (rc != want_rc || strcmp(err, want_msg) != 0) {
        print_error("input '%s': want %d '%s', got %d '%s'\n", s, want_rc, want_msg, rc, err);
        fail();
    }
    assert_null(j);
}

static void test_parse_ok(void **state) {
    cJSON *j;
    char err[256];
    assert_int_equal(parse(" {\"a\": [1, 2.5, \"x\\u00e9\", true, null], \"b\": {}}\n\t", &j, err),
                     0);
    assert_true(cJSON_IsObject(j));
    sl_buf_t out = SL_BUF_INIT;
    assert_int_equal(sl_json_print(j, &out), 0);
    assert_string_equal(out.data, "{\"a\":[1,2.5,\"x\xc3\xa9\",true,null],\"b\":{}}");
    cJSON_Delete(j);
    sl_buf_free(&out);
    /* Not NUL-terminated: only len bytes are read. */
    const char buf[] = {'[', '1', ']', 'x'};
    assert_int_equal(sl_json_parse(buf, 3, &j, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON_Delete(j);
    /* Scalars at the top level, UTF-8 passthrough, a BOM-free 4-byte character. */
    assert_int_equal(parse("\"\xf0\x9f\x98\x80\"", &j, err), 0);
    assert_string_equal(j->valuestring, "\xf0\x9f\x98\x80");
    cJSON_Delete(j);
    assert_int_equal(parse("42", &j, err), 0);
    assert_true(cJSON_IsNumber(j));
    cJSON_Delete(j);
    /* A NULL err is fine. */
    assert_int_equal(sl_json_parse("{", 1, &j, NULL, 0), SL_EPARSE);
}

static void test_nesting_limit(void **state) {
    cJSON *j;
    char err[256];
    /* 64 levels parse; 65 do not, and the error names the byte where the limit was crossed. */
    for (int depth = 63; depth <= 65; depth++) {
        /* Close them properly so only depth matters: [{"a":[{"a": ... 1 ... }]}] */
        sl_buf_t s = SL_BUF_INIT;
        for (int i = 0; i < depth; i++)
            sl_buf_puts(&s, i % 2 ? "{\"a\":" : "[");
        sl_buf_puts(&s, "1");
        for (int i = depth - 1; i >= 0; i--)
            sl_buf_puts(&s, i % 2 ? "}" : "]");
        int rc = sl_json_parse(s.data, s.len, &j, err, sizeof err);
        if (depth <= 64) {
            assert_int_equal(rc, 0);
            cJSON_Delete(j);
        } else {
            assert_int_equal(rc, SL_ELIMIT);
            assert_string_equal(err, "JSON nested deeper than 64 levels at byte 192");
        }
        sl_buf_free(&s);
    }
    /* A million open brackets: refused early, no recursion. */
    size_t big = 1000000;
    char *deep = malloc(big);
    memset(deep, '[', big);
    assert_int_equal(sl_json_parse(deep, big, &j, err, sizeof err), SL_ELIMIT);
    assert_string_equal(err, "JSON nested deeper than 64 levels at byte 64");
    free(deep);
    /* Brackets inside strings do not count. */
    sl_buf_t s = SL_BUF_INIT;
    sl_buf_putc(&s, '"');
    for (int i = 0; i < 1000; i++)
        sl_buf_puts(&s, "[{\\\"");
    sl_buf_putc(&s, '"');
    assert_int_equal(sl_json_parse(s.data, s.len, &j, err, sizeof err), 0);
    cJSON_Delete(j);
    sl_buf_free(&s);
    /* A smaller caller limit. */
    sl_json_limits_t lim = {.max_depth = 2};
    assert_int_equal(sl_json_parse_ex("[[1]]", 5, &lim, &j, err, sizeof err), 0);
    cJSON_Delete(j);
    assert_int_equal(sl_json_parse_ex("[[[1]]]", 7, &lim, &j, err, sizeof err), SL_ELIMIT);
    assert_string_equal(err, "JSON nested deeper than 2 levels at byte 2");
}

static void test_size_limit(void **state) {
    cJSON *j;
    char err[256];
    sl_json_limits_t lim = {.max_bytes = 8};
    assert_int_equal(sl_json_parse_ex("[1,2,3]", 7, &lim, &j, err, sizeof err), 0);
    cJSON_Delete(j);
    assert_int_equal(sl_json_parse_ex("[1,2,3,4]", 9, &lim, &j, err, sizeof err), SL_ELIMIT);
    assert_string_equal(err, "JSON of 9 bytes is larger than the limit of 8 bytes");
    assert_null(j);
}

static void test_malformed(void **state) {
    expect_error("", SL_EPARSE, "invalid JSON: empty input");
    expect_error("{\"a\":1} x", SL_EPARSE,
                 "invalid JSON: unexpected data after the value at byte 8");
    expect_error("[1] [2]", SL_EPARSE, "invalid JSON: unexpected data after the value at byte 4");
    expect_error("{\"a\":1}}", SL_EPARSE,
                 "invalid JSON: unexpected data after the value at byte 7");
    expect_error("{\"a\" 1}", SL_EPARSE, "invalid JSON at byte 5");
    expect_error("[1,]", SL_EPARSE, "invalid JSON at byte 3");
    expect_error("   ", SL_EPARSE, "invalid JSON at byte 2");
    expect_error("\"a\tb\"", SL_EPARSE, "invalid JSON: control character in a string at byte 2");
    expect_error("\"a\\\nb\"", SL_EPARSE, "invalid JSON: control character in a string at byte 3");
    expect_error("\"\xff\"", SL_EPARSE, "invalid JSON: invalid UTF-8 at byte 1");
    expect_error("\"\xc0\xaf\"", SL_EPARSE, "invalid JSON: invalid UTF-8 at byte 1"); /* overlong */
    expect_error("\"\xed\xa0\x80\"", SL_EPARSE, "invalid JSON: invalid UTF-8 at byte 1");
    expect_error("\"\xe2\x82\"", SL_EPARSE, "invalid JSON: invalid UTF-8 at byte 1"); /* short */
    expect_error("\"ab\\u0000c\"", SL_EPARSE, "JSON strings must not contain \\u0000 (byte 3)");
    /* A NUL byte inside the buffer. */
    cJSON *j;
    char err[256];
    assert_int_equal(sl_json_parse("[1]\0", 4, &j, err, sizeof err), SL_EPARSE);
    assert_string_equal(err, "invalid JSON: unexpected data after the value at byte 3");
    /* The message is cut to err_len. */
    char small[8];
    assert_int_equal(sl_json_parse("[", 1, &j, small, sizeof small), SL_EPARSE);
    assert_string_equal(small, "invalid");
}

static void test_getters(void **state) {
    cJSON *j;
    char err[256];
    assert_int_equal(parse("{\"name\":\"fraud\",\"n\":42,\"neg\":-7,\"big\":1e300,\"frac\":1.5,"
                           "\"huge\":9007199254740993,\"ratio\":0.25,\"on\":true,\"list\":[1,2,3],"
                           "\"obj\":{\"k\":1},\"nul\":null}",
                           &j, err),
                     0);
    const char *s;
    int64_t i;
    double d;
    bool b;
    const cJSON *arr, *obj;
    size_t n;

    assert_int_equal(sl_json_get_string(j, "name", &s, err, sizeof err), 0);
    assert_string_equal(s, "fraud");
    assert_int_equal(sl_json_get_string(j, "n", &s, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'n' must be a string, got a number");
    assert_int_equal(sl_json_get_string(j, "nul", &s, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'nul' must be a string, got null");
    assert_int_equal(sl_json_get_string(j, "missing", &s, err, sizeof err), SL_ENOENT);
    assert_string_equal(err, "missing field 'missing'");
    assert_int_equal(sl_json_get_string(j, "Name", &s, err, sizeof err), SL_ENOENT);

    assert_int_equal(sl_json_get_int64(j, "n", 0, 100, &i, err, sizeof err), 0);
    assert_int_equal(i, 42);
    assert_int_equal(sl_json_get_int64(j, "neg", -10, 10, &i, err, sizeof err), 0);
    assert_int_equal(i, -7);
    assert_int_equal(sl_json_get_int64(j, "n", 0, 10, &i, err, sizeof err), SL_ERANGE);
    assert_string_equal(err, "field 'n' must be between 0 and 10");
    assert_int_equal(sl_json_get_int64(j, "neg", 0, 10, &i, err, sizeof err), SL_ERANGE);
    assert_int_equal(sl_json_get_int64(j, "big", INT64_MIN, INT64_MAX, &i, err, sizeof err),
                     SL_ERANGE);
    assert_int_equal(sl_json_get_int64(j, "huge", INT64_MIN, INT64_MAX, &i, err, sizeof err),
                     SL_ERANGE);
    assert_string_equal(err, "field 'huge' is too large (integers must be below 2^53)");
    assert_int_equal(sl_json_get_int64(j, "frac", 0, 10, &i, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'frac' must be an integer");
    assert_int_equal(sl_json_get_int64(j, "name", 0, 10, &i, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'name' must be an integer, got a string");

    assert_int_equal(sl_json_get_double(j, "ratio", &d, err, sizeof err), 0);
    assert_true(d == 0.25);
    assert_int_equal(sl_json_get_double(j, "n", &d, err, sizeof err), 0);
    assert_true(d == 42.0);
    assert_int_equal(sl_json_get_double(j, "on", &d, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'on' must be a number, got a boolean");

    assert_int_equal(sl_json_get_bool(j, "on", &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(sl_json_get_bool(j, "n", &b, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'n' must be true or false, got a number");

    assert_int_equal(sl_json_get_array(j, "list", &arr, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(cJSON_GetArrayItem(arr, 2)->valueint, 3);
    assert_int_equal(sl_json_get_array(j, "obj", &arr, &n, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'obj' must be an array, got an object");
    assert_int_equal(sl_json_get_object(j, "obj", &obj, err, sizeof err), 0);
    assert_int_equal(sl_json_get_int64(obj, "k", 0, 1, &i, err, sizeof err), 0);
    assert_int_equal(sl_json_get_object(j, "list", &obj, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "field 'list' must be an object, got an array");

    /* A getter on something that is not an object. */
    assert_int_equal(sl_json_get_array(j, "list", &arr, &n, err, sizeof err), 0);
    assert_int_equal(sl_json_get_string(arr, "x", &s, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "expected a JSON object with field 'x', got an array");
    assert_int_equal(sl_json_get_string(NULL, "x", &s, NULL, 0), SL_EINVAL);
    cJSON_Delete(j);
}

static void test_print(void **state) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "msg", "a\"b\n");
    cJSON_AddNumberToObject(o, "n", 3);
    cJSON_AddItemToObject(o, "arr", cJSON_CreateArray());
    sl_buf_t out = SL_BUF_INIT;
    sl_buf_puts(&out, "x=");
    assert_int_equal(sl_json_print(o, &out), 0);
    assert_string_equal(out.data, "x={\"msg\":\"a\\\"b\\n\",\"n\":3,\"arr\":[]}");
    /* What we print parses back. */
    cJSON *back;
    char err[256];
    assert_int_equal(sl_json_parse(out.data + 2, out.len - 2, &back, err, sizeof err), 0);
    assert_true(cJSON_Compare(o, back, 1));
    cJSON_Delete(back);
    cJSON_Delete(o);
    sl_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),   cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_size_limit), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_getters),    cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
