/* Unit tests for the gRPC wire helpers: message framing, unary body parsing, grpc-timeout,
 * grpc-message percent-encoding, content-type checks and status names. */
#include "core/grpc_frame.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static sl_str_t S(const char *s) {
    return (sl_str_t){s, strlen(s)};
}

static void test_prefix_roundtrip(void **state) {
    uint8_t p[SL_GRPC_PREFIX_LEN];
    sl_grpc__prefix_write(p, false, 0x01020304u);
    const uint8_t want[] = {0, 1, 2, 3, 4};
    assert_memory_equal(p, want, 5);
    bool comp = true;
    uint32_t len = 0;
    assert_int_equal(sl_grpc__prefix_parse(p, 5, &comp, &len), 0);
    assert_false(comp);
    assert_int_equal(len, 0x01020304u);

    sl_grpc__prefix_write(p, true, 7);
    assert_int_equal(sl_grpc__prefix_parse(p, 5, &comp, &len), 0);
    assert_true(comp);
    assert_int_equal(len, 7);

    assert_int_equal(sl_grpc__prefix_parse(p, 4, &comp, &len), SL_EAGAIN);
    p[0] = 2;
    assert_int_equal(sl_grpc__prefix_parse(p, 5, &comp, &len), SL_EPROTO);
}

static void test_frame_append_and_unary_parse(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_grpc__frame_append(&b, "hello", 5);
    assert_int_equal(b.len, 10);
    const uint8_t *msg;
    size_t len;
    const char *why;
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, b.len, 100, &msg, &len, &why),
                     SL_GRPC_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(msg, "hello", 5);

    /* Larger than the limit: refused from the prefix alone. */
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 5, 4, &msg, &len, &why),
                     SL_GRPC_RESOURCE_EXHAUSTED);
    /* Truncated body and truncated prefix. */
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 8, 100, &msg, &len, &why),
                     SL_GRPC_INTERNAL);
    assert_non_null(strstr(why, "truncated"));
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 3, 100, &msg, &len, &why),
                     SL_GRPC_INTERNAL);
    /* No message at all. */
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 0, 100, &msg, &len, &why),
                     SL_GRPC_INTERNAL);
    assert_non_null(strstr(why, "no message"));
    /* Two messages. */
    sl_grpc__frame_append(&b, "x", 1);
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, b.len, 100, &msg, &len, &why),
                     SL_GRPC_INTERNAL);
    assert_non_null(strstr(why, "more than one"));
    /* Compressed flag. */
    b.data[0] = 1;
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 10, 100, &msg, &len, &why),
                     SL_GRPC_UNIMPLEMENTED);
    b.data[0] = 9;
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, 10, 100, &msg, &len, &why),
                     SL_GRPC_INTERNAL);
    /* An empty message is a message. */
    sl_buf_reset(&b);
    sl_grpc__frame_append(&b, "", 0);
    assert_int_equal(sl_grpc__unary_parse((const uint8_t *)b.data, b.len, 0, &msg, &len, &why),
                     SL_GRPC_OK);
    assert_int_equal(len, 0);
    sl_buf_free(&b);
}

static void test_timeout_parse(void **state) {
    uint64_t ns = 0;
    assert_int_equal(sl_grpc__timeout_parse(S("100m"), &ns), 0);
    assert_int_equal(ns, 100000000ull);
    assert_int_equal(sl_grpc__timeout_parse(S("5S"), &ns), 0);
    assert_int_equal(ns, 5000000000ull);
    assert_int_equal(sl_grpc__timeout_parse(S("2H"), &ns), 0);
    assert_int_equal(ns, 7200000000000ull);
    assert_int_equal(sl_grpc__timeout_parse(S("3M"), &ns), 0);
    assert_int_equal(ns, 180000000000ull);
    assert_int_equal(sl_grpc__timeout_parse(S("250u"), &ns), 0);
    assert_int_equal(ns, 250000ull);
    assert_int_equal(sl_grpc__timeout_parse(S("7n"), &ns), 0);
    assert_int_equal(ns, 7ull);
    assert_int_equal(sl_grpc__timeout_parse(S("0m"), &ns), 0);
    assert_int_equal(ns, 0ull);
    /* The largest value does not overflow. */
    assert_int_equal(sl_grpc__timeout_parse(S("99999999H"), &ns), 0);
    assert_int_equal(ns, 99999999ull * 3600ull * 1000000000ull);

    assert_int_equal(sl_grpc__timeout_parse(S("123456789m"), &ns), SL_EPARSE); /* 9 digits */
    assert_int_equal(sl_grpc__timeout_parse(S("100x"), &ns), SL_EPARSE);       /* bad unit */
    assert_int_equal(sl_grpc__timeout_parse(S("100"), &ns), SL_EPARSE);        /* no unit */
    assert_int_equal(sl_grpc__timeout_parse(S("m"), &ns), SL_EPARSE);          /* no digits */
    assert_int_equal(sl_grpc__timeout_parse(S(""), &ns), SL_EPARSE);
    assert_int_equal(sl_grpc__timeout_parse(S("-1S"), &ns), SL_EPARSE);
    assert_int_equal(sl_grpc__timeout_parse(S("1 S"), &ns), SL_EPARSE);
    assert_int_equal(sl_grpc__timeout_parse(S("1s"), &ns),
                     SL_EPARSE); /* units are case-sensitive */
}

static void test_timeout_format(void **state) {
    char out[SL_GRPC_TIMEOUT_MAX_LEN];
    assert_int_equal(sl_grpc__timeout_format(250, out), 4);
    assert_string_equal(out, "250m");
    sl_grpc__timeout_format(99999999, out);
    assert_string_equal(out, "99999999m");
    /* Past 8 digits of milliseconds: seconds, rounded up (never a shorter deadline). */
    sl_grpc__timeout_format(100000001, out);
    assert_string_equal(out, "100001S");
    sl_grpc__timeout_format(UINT64_MAX, out);
    assert_string_equal(out, "99999999H");
    /* Whatever is formatted parses back to at least the same duration. */
    const uint64_t samples[] = {1, 999, 1000, 123456789, 99999999999ull, 360000000000ull};
    for (size_t i = 0; i < SL_ARRAY_LEN(samples); i++) {
        size_t n = sl_grpc__timeout_format(samples[i], out);
        assert_true(n >= 2 && n <= 9);
        uint64_t ns;
        assert_int_equal(sl_grpc__timeout_parse((sl_str_t){out, n}, &ns), 0);
        assert_true(ns >= samples[i] * 1000000ull);
    }
}

static void test_message_encoding(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_grpc__message_encode(&b, "plain text", 10);
    assert_string_equal(b.data, "plain text");
    sl_buf_reset(&b);
    sl_grpc__message_encode(&b, "50% off\n", 8);
    assert_string_equal(b.data, "50%25 off%0A");
    sl_buf_reset(&b);
    const char utf8[] = "caf\xc3\xa9";
    sl_grpc__message_encode(&b, utf8, 5);
    assert_string_equal(b.data, "caf%C3%A9");

    sl_buf_t d = SL_BUF_INIT;
    sl_grpc__message_decode(&d, b.data, b.len);
    assert_int_equal(d.len, 5);
    assert_memory_equal(d.data, utf8, 5);
    /* Malformed escapes are kept as they are, never an error. */
    sl_buf_reset(&d);
    sl_grpc__message_decode(&d, "100%", 4);
    assert_string_equal(d.data, "100%");
    sl_buf_reset(&d);
    sl_grpc__message_decode(&d, "%zz%4", 5);
    assert_string_equal(d.data, "%zz%4");
    sl_buf_reset(&d);
    sl_grpc__message_decode(&d, "%41%62c", 7);
    assert_string_equal(d.data, "Abc");
    /* Every byte value survives a round trip. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    sl_buf_reset(&b);
    sl_buf_reset(&d);
    sl_grpc__message_encode(&b, all, sizeof all);
    for (size_t i = 0; i < b.len; i++) {
        assert_true((unsigned char)b.data[i] >= 0x20 && (unsigned char)b.data[i] <= 0x7e);
    }
    sl_grpc__message_decode(&d, b.data, b.len);
    assert_int_equal(d.len, 256);
    assert_memory_equal(d.data, all, 256);
    sl_buf_free(&b);
    sl_buf_free(&d);
}

static void test_content_type(void **state) {
    assert_true(sl_grpc__content_type_ok(S("application/grpc")));
    assert_true(sl_grpc__content_type_ok(S("application/grpc+proto")));
    assert_true(sl_grpc__content_type_ok(S("application/grpc;charset=utf-8")));
    assert_true(sl_grpc__content_type_ok(S("Application/GRPC")));
    assert_false(sl_grpc__content_type_ok(S("application/grpcx")));
    assert_false(sl_grpc__content_type_ok(S("application/json")));
    assert_false(sl_grpc__content_type_ok(S("application/grp")));
    assert_false(sl_grpc__content_type_ok(S("")));
}

static void test_status_names_and_http_mapping(void **state) {
    assert_string_equal(sl_grpc_code_name(SL_GRPC_OK), "OK");
    assert_string_equal(sl_grpc_code_name(SL_GRPC_CANCELLED), "CANCELLED");
    assert_string_equal(sl_grpc_code_name(SL_GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(sl_grpc_code_name(SL_GRPC_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
    assert_string_equal(sl_grpc_code_name(SL_GRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
    assert_string_equal(sl_grpc_code_name(SL_GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_int_equal(SL_GRPC_UNAUTHENTICATED, 16);
    assert_string_equal(sl_grpc_code_name(17), "UNKNOWN");
    assert_string_equal(sl_grpc_code_name(-1), "UNKNOWN");

    assert_int_equal(sl_grpc__code_from_http(400), SL_GRPC_INTERNAL);
    assert_int_equal(sl_grpc__code_from_http(401), SL_GRPC_UNAUTHENTICATED);
    assert_int_equal(sl_grpc__code_from_http(403), SL_GRPC_PERMISSION_DENIED);
    assert_int_equal(sl_grpc__code_from_http(404), SL_GRPC_UNIMPLEMENTED);
    assert_int_equal(sl_grpc__code_from_http(429), SL_GRPC_UNAVAILABLE);
    assert_int_equal(sl_grpc__code_from_http(503), SL_GRPC_UNAVAILABLE);
    assert_int_equal(sl_grpc__code_from_http(500), SL_GRPC_UNKNOWN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_roundtrip),
        cmocka_unit_test(test_frame_append_and_unary_parse),
        cmocka_unit_test(test_timeout_parse),
        cmocka_unit_test(test_timeout_format),
        cmocka_unit_test(test_message_encoding),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_status_names_and_http_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
