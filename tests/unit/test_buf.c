/* Unit tests for core/buf: growth of append and printf, consume and reset, and JSON escaping,
 * which must turn any byte string into valid JSON (ill-formed UTF-8 becomes \ufffd). */
#include "core/buf.h"
#include "core/common.h"

#include <cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_append_grows(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    char expect[10000];
    for (size_t i = 0; i < sizeof expect; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        sl_buf_append(&b, &c, 1);
        assert_int_equal(b.len, i + 1);
        assert_true(b.cap >= b.len + 1);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_memory_equal(b.data, expect, sizeof expect);
    sl_buf_append(&b, "", 0);
    assert_int_equal(b.len, sizeof expect);
    sl_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_puts_putc(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "hello");
    sl_buf_putc(&b, ',');
    sl_buf_putc(&b, ' ');
    sl_buf_puts(&b, "world");
    assert_string_equal(b.data, "hello, world");
    assert_int_equal(b.len, 12);
    sl_buf_free(&b);
}

static void test_printf_grows(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "42-x");
    /* Longer than the first reservation: the second vsnprintf must produce the whole string. */
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sl_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 4 + 2 + sizeof big - 1);
    assert_int_equal(b.data[4], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(strspn(b.data + 5, "z"), sizeof big - 1);
    size_t len = b.len;
    sl_buf_printf(&b, "%s", "");
    assert_int_equal(b.len, len);
    sl_buf_free(&b);
}

static void test_consume_reset(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "0123456789");
    sl_buf_consume(&b, 3);
    assert_string_equal(b.data, "3456789");
    assert_int_equal(b.len, 7);
    sl_buf_consume(&b, 0);
    assert_string_equal(b.data, "3456789");
    sl_buf_consume(&b, 7);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    sl_buf_puts(&b, "abc");
    sl_buf_consume(&b, 100); /* more than there is: empties */
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");

    sl_buf_printf(&b, "%0500d", 1);
    size_t cap = b.cap;
    sl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* memory kept for reuse */
    assert_string_equal(b.data, "");
    sl_buf_reset(&b);
    sl_buf_free(&b);

    sl_buf_t empty = SL_BUF_INIT;
    sl_buf_reset(&empty); /* no data yet: must not crash */
    sl_buf_consume(&empty, 1);
    sl_buf_free(&empty);
}

static char *escape(const char *s, size_t n) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_json_escape(&b, s, n);
    char *out = sl_strdup(b.data ? b.data : "");
    sl_buf_free(&b);
    return out;
}

#define ASSERT_ESCAPE(in, want)                                                                    \
    do {                                                                                           \
        char *got_ = escape((in), sizeof(in) - 1);                                                 \
        assert_string_equal(got_, (want));                                                         \
        free(got_);                                                                                \
    } while (0)

static void test_escape_ascii(void **state) {
    ASSERT_ESCAPE("plain text 123", "plain text 123");
    ASSERT_ESCAPE("a\"b\\c", "a\\\"b\\\\c");
    ASSERT_ESCAPE("l1\nl2\r\tx", "l1\\nl2\\r\\tx");
    ASSERT_ESCAPE("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    ASSERT_ESCAPE("a\0b", "a\\u0000b"); /* n counts the NUL: it is data */
    ASSERT_ESCAPE("", "");
    ASSERT_ESCAPE("/<>'", "/<>'");

    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"k\":\"");
    sl_buf_json_escape(&b, "v\"", 2);
    sl_buf_puts(&b, "\"}");
    assert_string_equal(b.data, "{\"k\":\"v\\\"\"}"); /* appends, keeps what was there */
    sl_buf_free(&b);
}

static void test_escape_utf8_valid(void **state) {
    ASSERT_ESCAPE("\xc3\xa9", "\xc3\xa9");                 /* U+00E9, 2 bytes */
    ASSERT_ESCAPE("\xc2\x80", "\xc2\x80");                 /* U+0080, smallest 2-byte */
    ASSERT_ESCAPE("\xe2\x82\xac", "\xe2\x82\xac");         /* U+20AC, 3 bytes */
    ASSERT_ESCAPE("\xe0\xa0\x80", "\xe0\xa0\x80");         /* U+0800, smallest 3-byte */
    ASSERT_ESCAPE("\xed\x9f\xbf", "\xed\x9f\xbf");         /* U+D7FF, just below surrogates */
    ASSERT_ESCAPE("\xee\x80\x80", "\xee\x80\x80");         /* U+E000, just above */
    ASSERT_ESCAPE("\xef\xbf\xbf", "\xef\xbf\xbf");         /* U+FFFF */
    ASSERT_ESCAPE("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"); /* U+1F600, 4 bytes */
    ASSERT_ESCAPE("\xf0\x90\x80\x80", "\xf0\x90\x80\x80"); /* U+10000, smallest 4-byte */
    ASSERT_ESCAPE("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last code point */
    ASSERT_ESCAPE("x\xc3\xa9\"\xf0\x9f\x98\x80\n", "x\xc3\xa9\\\"\xf0\x9f\x98\x80\\n");
}

#define R "\\ufffd"

static void test_escape_utf8_invalid(void **state) {
    /* Overlong encodings: C0/C1 can never start a sequence; E0/F0 need a high second byte. */
    ASSERT_ESCAPE("\xc0\xaf", R R);
    ASSERT_ESCAPE("\xc1\xbf", R R);
    ASSERT_ESCAPE("\xe0\x80\xaf", R R R);
    ASSERT_ESCAPE("\xe0\x9f\xbf", R R R);
    ASSERT_ESCAPE("\xf0\x80\x80\xaf", R R R R);
    ASSERT_ESCAPE("\xf0\x8f\xbf\xbf", R R R R);
    /* UTF-16 surrogates encoded as UTF-8 (CESU). */
    ASSERT_ESCAPE("\xed\xa0\x80", R R R);
    ASSERT_ESCAPE("\xed\xbf\xbf", R R R);
    ASSERT_ESCAPE("\xed\xa0\xbd\xed\xb8\x80", R R R R R R);
    /* Beyond U+10FFFF and bytes that never occur. */
    ASSERT_ESCAPE("\xf4\x90\x80\x80", R R R R);
    ASSERT_ESCAPE("\xf5\x80\x80\x80", R R R R);
    ASSERT_ESCAPE("\xfe\xff", R R);
    /* Lone continuation bytes, and a sequence cut by another character: the maximal valid
     * prefix is one replacement, then the next character stands. */
    ASSERT_ESCAPE("a\x80z", "a" R "z");
    ASSERT_ESCAPE("\xe2\x82x", R "x");
    ASSERT_ESCAPE("\xf0\x9f\x98\"", R "\\\"");
    ASSERT_ESCAPE("\xc3\xc3\xa9", R "\xc3\xa9");
    /* Sequences truncated at the end of the input. */
    ASSERT_ESCAPE("ok\xc3", "ok" R);
    ASSERT_ESCAPE("ok\xe2\x82", "ok" R);
    ASSERT_ESCAPE("ok\xf0\x9f\x98", "ok" R);
    /* n shorter than the string: the cut counts as the end. */
    char *got = escape("\xe2\x82\xac", 2);
    assert_string_equal(got, R);
    free(got);
}

/* An independent check: decode to code points and apply the definition of UTF-8. */
static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], len, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

static void test_escape_random_is_valid_json(void **state) {
    srand(12345);
    unsigned char in[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof in);
        for (size_t i = 0; i < n; i++) {
            /* Bias toward the interesting bytes: lead bytes, continuations, controls. */
            int r = rand() % 4;
            in[i] = r == 0   ? (unsigned char)(0x80 + rand() % 0x40)
                    : r == 1 ? (unsigned char)(0xc0 + rand() % 0x40)
                             : (unsigned char)(rand() % 256);
        }
        sl_buf_t b = SL_BUF_INIT;
        sl_buf_putc(&b, '"');
        sl_buf_json_escape(&b, (const char *)in, n);
        sl_buf_putc(&b, '"');
        assert_true(utf8_valid((const unsigned char *)b.data, b.len));
        for (size_t i = 0; i < b.len; i++)
            assert_true((unsigned char)b.data[i] >= 0x20);
        cJSON *j = cJSON_Parse(b.data);
        assert_non_null(j);
        assert_true(cJSON_IsString(j));
        /* Valid input round-trips byte for byte (a NUL would end the C string early). */
        if (utf8_valid(in, n) && !memchr(in, 0, n)) {
            assert_int_equal(strlen(j->valuestring), n);
            assert_memory_equal(j->valuestring, in, n);
        }
        cJSON_Delete(j);
        sl_buf_free(&b);
    }
}

static void test_escape_code_points_round_trip(void **state) {
    /* Every code point class, encoded by hand, must survive escape + JSON parse unchanged. */
    static const unsigned cps[] = {0x41,   0x7e,   0xa9,    0x7ff,   0x800,   0xd7ff,
                                   0xe000, 0xfffd, 0x10000, 0x1f600, 0x10ffff};
    for (unsigned i = 0; i < SL_ARRAY_LEN(cps); i++) {
        unsigned cp = cps[i];
        unsigned char enc[5] = {0};
        size_t n;
        if (cp < 0x80) {
            enc[0] = (unsigned char)cp, n = 1;
        } else if (cp < 0x800) {
            enc[0] = (unsigned char)(0xc0 | cp >> 6), enc[1] = (unsigned char)(0x80 | (cp & 63));
            n = 2;
        } else if (cp < 0x10000) {
            enc[0] = (unsigned char)(0xe0 | cp >> 12);
            enc[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
            enc[2] = (unsigned char)(0x80 | (cp & 63));
            n = 3;
        } else {
            enc[0] = (unsigned char)(0xf0 | cp >> 18);
            enc[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
            enc[2] = (unsigned char)(0x80 | (cp >> 6 & 63));
            enc[3] = (unsigned char)(0x80 | (cp & 63));
            n = 4;
        }
        sl_buf_t b = SL_BUF_INIT;
        sl_buf_putc(&b, '"');
        sl_buf_json_escape(&b, (const char *)enc, n);
        sl_buf_putc(&b, '"');
        cJSON *j = cJSON_Parse(b.data);
        assert_non_null(j);
        assert_string_equal(j->valuestring, (const char *)enc);
        cJSON_Delete(j);
        sl_buf_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_puts_putc),
        cmocka_unit_test(test_printf_grows),
        cmocka_unit_test(test_consume_reset),
        cmocka_unit_test(test_escape_ascii),
        cmocka_unit_test(test_escape_utf8_valid),
        cmocka_unit_test(test_escape_utf8_invalid),
        cmocka_unit_test(test_escape_random_is_valid_json),
        cmocka_unit_test(test_escape_code_points_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
