/* The OIP request decoder's JSON tokenizer (see oip_json_scan.h): one validating pass that
 * accepts what sl_json_parse accepts, then cursors, string decoding and number conversion for
 * oip_json.c. Each rule below names the cJSON (Debian 1.7.15-1+deb12u4) or core/json.c behaviour it
 * mirrors. */
#define _GNU_SOURCE /* strtod_l; the build's other feature macros are subsets of it */
#include "oip/oip_json_scan.h"

#include "core/common.h"
#include "core/json.h"
#include "core/utf8.h"

#include <float.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline bool is_digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

/* The characters cJSON's parse_number hands to strtod. */
static inline bool is_num_char(uint8_t c) {
    return is_digit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
}

static inline bool is_plain(uint8_t c) {
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* cJSON's parse_hex4: any non-hex digit makes the whole code 0. */
static unsigned hex4(const uint8_t *p) {
    unsigned h = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        if (c >= '0' && c <= '9') {
            h = (h << 4) | (unsigned)(c - '0');
        } else if (c >= 'A' && c <= 'F') {
            h = (h << 4) | (unsigned)(c - 'A' + 10);
        } else if (c >= 'a' && c <= 'f') {
            h = (h << 4) | (unsigned)(c - 'a' + 10);
        } else {
            return 0;
        }
    }
    return h;
}

/* One escape sequence of the string body [p, end) as cJSON's parse_string decodes it (s[p] is a
 * backslash; s[end] is the closing quote, which the escape may consume: the sequences cJSON
 * decodes need not line up with the backslash pairs that found the end). Returns the sequence's
 * length and writes its code point to *cp (0 for a \u with a non-hex digit), or returns 0 where
 * cJSON fails. */
static size_t escape(const uint8_t *s, size_t p, size_t end, uint32_t *cp) {
    switch (s[p + 1]) {
    case 'b':
        *cp = '\b';
        return 2;
    case 'f':
        *cp = '\f';
        return 2;
    case 'n':
        *cp = '\n';
        return 2;
    case 'r':
        *cp = '\r';
        return 2;
    case 't':
        *cp = '\t';
        return 2;
    case '"':
    case '\\':
    case '/':
        *cp = s[p + 1];
        return 2;
    case 'u':
        break;
    default:
        return 0;
    }
    if (end - p < 6) return 0;
    unsigned first = hex4(s + p + 2);
    if (first >= 0xDC00 && first <= 0xDFFF) return 0; /* a lone low surrogate */
    if (first < 0xD800 || first > 0xDBFF) {
        *cp = first;
        return 6;
    }
    /* A high surrogate needs a low one right after it. */
    if (end - (p + 6) < 6 || s[p + 6] != '\\' || s[p + 7] != 'u') return 0;
    unsigned second = hex4(s + p + 8);
    if (second < 0xDC00 || second > 0xDFFF) return 0;
    *cp = 0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF));
    return 12;
}

/* The string starting at s[i] (a quote): returns one past its closing quote, or 0 when
 * sl_json_parse refuses it. The end is found as cJSON finds it (a backslash hides the next
 * byte); the body must pass core/json.c's pre-scan (no raw byte below 0x20, none escaped
 * either, no \u0000, valid UTF-8 outside escapes) and cJSON's decoding of every escape. */
static size_t scan_string(const uint8_t *s, size_t len, size_t i) {
    size_t p = i + 1;
    bool escapes = false;
    for (;;) {
        while (p < len && is_plain(s[p]))
            p++;
        if (p >= len) return 0; /* unterminated */
        uint8_t c = s[p];
        if (c == '"') break;
        if (c == '\\') {
            if (p + 1 >= len) return 0;
            if (len - p >= 6 && memcmp(s + p + 1, "u0000", 5) == 0) return 0;
            if (s[p + 1] < 0x20) return 0;
            escapes = true;
            p += 2;
        } else if (c < 0x20) {
            return 0;
        } else {
            size_t n = sl_utf8_seq(s + p, len - p, NULL);
            if (n == 0) return 0;
            p += n;
        }
    }
    size_t end = p;
    if (escapes) {
        for (p = i + 1; p < end;) {
            if (s[p] != '\\') {
                p++;
                continue;
            }
            uint32_t cp;
            size_t n = escape(s, p, end, &cp);
            if (n == 0) return 0;
            p += n;
        }
    }
    return end + 1;
}

/* The number starting at s[i] ('-' or a digit): returns one past it, or 0 when sl_json_parse
 * refuses it. cJSON hands strtod the longest run of [0-9+-.eE] (of any length since Debian's
 * fix for CVE-2023-26819; 63 characters before) and fails unless strtod reads all of it; strtod
 * reads -?(D+(.D*)?|.D+)([eE][+-]?D+)?. So the number is what that grammar reads, not followed
 * by another character of the run. */
static size_t scan_number(const uint8_t *s, size_t len, size_t i) {
    size_t p = i;
    if (s[p] == '-') p++;
    size_t start = p;
    while (p < len && is_digit(s[p]))
        p++;
    size_t digits = p - start;
    if (p < len && s[p] == '.') {
        start = ++p;
        while (p < len && is_digit(s[p]))
            p++;
        digits += p - start;
    }
    if (digits == 0) return 0;
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-')) p++;
        start = p;
        while (p < len && is_digit(s[p]))
            p++;
        if (p == start) return 0;
    }
    return p < len && is_num_char(s[p]) ? 0 : p;
}

static inline size_t ws(const uint8_t *s, size_t len, size_t i) {
    while (i < len && s[i] <= 0x20) /* cJSON's buffer_skip_whitespace */
        i++;
    return i;
}

bool sl_oip__json_validate(sl_oip_json_t *j, const uint8_t *s, size_t len) {
    j->s = s;
    j->len = len;
    j->root = 0;
    j->n_spans = 0;
    if (!s || len == 0 || len > SL_JSON_MAX_BYTES) return false;
    size_t i = 0;
    /* cJSON skips a UTF-8 BOM, but only in a buffer of at least 5 bytes. */
    if (len >= 5 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) i = 3;
    i = ws(s, len, i);
    j->root = i;

    /* The open containers: bit d of objects is set when level d is an object; span[d] is the
     * container's slot in j->spans (-1 past SL_OIP_JSON_SPANS). */
    unsigned depth = 0;
    uint64_t objects = 0;
    int span[SL_JSON_MAX_DEPTH];
    _Static_assert(SL_JSON_MAX_DEPTH <= 64, "objects is a 64-bit mask");

value:
    if (i >= len) return false;
    switch (s[i]) {
    case '{':
    case '[': {
        if (depth == SL_JSON_MAX_DEPTH) return false; /* the pre-scan's nesting limit */
        bool obj = s[i] == '{';
        span[depth] = -1;
        if (j->n_spans < SL_OIP_JSON_SPANS) {
            span[depth] = (int)j->n_spans;
            j->spans[j->n_spans].start = (uint32_t)i;
            j->spans[j->n_spans].end = 0;
            j->n_spans++;
        }
        if (obj) {
            objects |= UINT64_C(1) << depth;
        } else {
            objects &= ~(UINT64_C(1) << depth);
        }
        depth++;
        i = ws(s, len, i + 1);
        if (i < len && s[i] == (obj ? '}' : ']')) goto close;
        if (obj) goto key;
        goto value;
    }
    case '"':
        i = scan_string(s, len, i);
        if (i == 0) return false;
        goto after;
    case 'n':
        if (len - i < 4 || memcmp(s + i, "null", 4) != 0) return false;
        i += 4;
        goto after;
    case 't':
        if (len - i < 4 || memcmp(s + i, "true", 4) != 0) return false;
        i += 4;
        goto after;
    case 'f':
        if (len - i < 5 || memcmp(s + i, "false", 5) != 0) return false;
        i += 5;
        goto after;
    default:
        if (s[i] != '-' && !is_digit(s[i])) return false;
        i = scan_number(s, len, i);
        if (i == 0) return false;
        goto after;
    }

key:
    if (i >= len || s[i] != '"') return false;
    i = scan_string(s, len, i);
    if (i == 0) return false;
    i = ws(s, len, i);
    if (i >= len || s[i] != ':') return false;
    i = ws(s, len, i + 1);
    goto value;

close: /* s[i] closes the innermost container */
    depth--;
    if (span[depth] >= 0) j->spans[span[depth]].end = (uint32_t)(i + 1);
    i++;

after:
    if (depth == 0) {
        /* core/json.c allows only these four after the root value. */
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            i++;
        return i == len;
    }
    i = ws(s, len, i);
    if (i >= len) return false;
    bool in_obj = (objects >> (depth - 1)) & 1;
    if (s[i] == ',') {
        i = ws(s, len, i + 1);
        if (in_obj) goto key;
        goto value;
    }
    if (s[i] == (in_obj ? '}' : ']')) goto close;
    return false;
}

/* ---- cursors ---- */

/* One past the closing quote of the string at pos (cJSON's end search), or len. */
static size_t string_end(const uint8_t *s, size_t len, size_t pos, bool *escapes) {
    size_t p = pos + 1;
    *escapes = false;
    while (p < len) {
        uint8_t c = s[p];
        if (c == '"') return p + 1;
        if (c == '\\') {
            *escapes = true;
            p += 2;
        } else {
            p++;
        }
    }
    return len;
}

static size_t skip_container(const sl_oip_json_t *j, size_t pos) {
    /* Spans are in document order: a binary search by start. */
    uint32_t lo = 0, hi = j->n_spans;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (j->spans[mid].start < pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < j->n_spans && j->spans[lo].start == pos && j->spans[lo].end != 0) {
        return j->spans[lo].end;
    }
    const uint8_t *s = j->s;
    size_t depth = 0, p = pos;
    while (p < j->len) {
        uint8_t c = s[p];
        if (c == '"') {
            bool escapes;
            p = string_end(s, j->len, p, &escapes);
            continue;
        }
        if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (--depth == 0) return p + 1;
        }
        p++;
    }
    return j->len;
}

size_t sl_oip__json_skip(const sl_oip_json_t *j, size_t pos) {
    const uint8_t *s = j->s;
    size_t len = j->len;
    if (pos >= len) return len;
    switch (s[pos]) {
    case '"': {
        bool escapes;
        return string_end(s, len, pos, &escapes);
    }
    case '[':
    case '{':
        return skip_container(j, pos);
    case 't':
    case 'n':
        return pos + 4 <= len ? pos + 4 : len;
    case 'f':
        return pos + 5 <= len ? pos + 5 : len;
    default: {
        size_t p = pos;
        while (p < len && is_num_char(s[p]))
            p++;
        return p > pos ? p : pos + 1;
    }
    }
}

/* Appends code point cp as UTF-8 (cJSON's utf16_literal_to_utf8) to the C string being
 * decoded; returns false at a NUL, which ends it. */
static bool put_cp(uint32_t cp, uint8_t *out, size_t cap, size_t *n) {
    uint8_t b[4];
    size_t k;
    if (cp == 0) return false;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 4;
    }
    for (size_t i = 0; i < k; i++, (*n)++) {
        if (*n < cap) out[*n] = b[i];
    }
    return true;
}

size_t sl_oip__json_str(const sl_oip_json_t *j, size_t pos, uint8_t *out, size_t cap,
                        size_t *clen) {
    const uint8_t *s = j->s;
    bool escapes;
    size_t after = string_end(s, j->len, pos, &escapes);
    size_t end = after - 1; /* the closing quote */
    *clen = 0;
    if (after <= pos + 1) return after; /* not reached for a validated string */
    if (!escapes) {
        /* Raw bytes: the pre-scan let no NUL through. */
        size_t n = end - (pos + 1);
        if (cap) memcpy(out, s + pos + 1, n < cap ? n : cap);
        *clen = n;
        return after;
    }
    size_t n = 0;
    for (size_t p = pos + 1; p < end;) {
        if (s[p] != '\\') {
            if (n < cap) out[n] = s[p];
            n++;
            p++;
            continue;
        }
        uint32_t cp = 0;
        size_t k = escape(s, p, end, &cp);
        if (k == 0 || !put_cp(cp, out, cap, &n)) break; /* k == 0: not for validated input */
        p += k;
    }
    *clen = n;
    return after;
}

/* ---- numbers ---- */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void) {
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod in the "C" locale, made once, of the token s[0..n): what cJSON's strtod computes,
 * without its localeconv() per number. The token needs a terminator: tokens that long are
 * rare, and cJSON copied every number too. */
static double slow_strtod(const uint8_t *s, size_t n) {
    char small[64];
    pthread_once(&c_locale_once, make_c_locale);
    SL_ASSERT(c_locale != (locale_t)0); /* only out of memory makes "C" fail */
    char *buf = n < sizeof small ? small : sl_malloc(n + 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod_l(buf, NULL, c_locale);
    if (buf != small) free(buf);
    return d;
}

/* Exact powers of ten as doubles (10^22 is the last one). */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

size_t sl_oip__json_num(const sl_oip_json_t *j, size_t pos, sl_oip_json_num_t *out) {
    const uint8_t *s = j->s;
    size_t len = j->len, p = pos;
    bool neg = false, big = false, frac = false;
    uint64_t mant = 0;
    int64_t exp10 = 0;
    if (p < len && s[p] == '-') {
        neg = true;
        p++;
    }
    /* Digits past what a uint64_t holds set big: strtod reads those numbers. */
    for (; p < len && is_digit(s[p]); p++) {
        if (mant > (UINT64_MAX - 9) / 10) {
            big = true;
        } else {
            mant = mant * 10 + (uint64_t)(s[p] - '0');
        }
    }
    if (p < len && s[p] == '.') {
        frac = true;
        for (p++; p < len && is_digit(s[p]); p++) {
            if (mant > (UINT64_MAX - 9) / 10) {
                big = true;
            } else {
                mant = mant * 10 + (uint64_t)(s[p] - '0');
                exp10--;
            }
        }
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        frac = true;
        p++;
        bool eneg = false;
        if (p < len && (s[p] == '+' || s[p] == '-')) eneg = s[p++] == '-';
        int64_t e = 0;
        for (; p < len && is_digit(s[p]); p++) {
            if (e < 100000) e = e * 10 + (s[p] - '0');
        }
        exp10 += eneg ? -e : e;
    }
    out->exact = false;
    out->i = 0;
    if (!big && !frac && mant <= (uint64_t)INT64_MAX) {
        /* An integer: exact, and its double rounded once, as strtod rounds it. */
        out->exact = true;
        out->i = neg ? -(int64_t)mant : (int64_t)mant;
        out->d = neg ? -(double)mant : (double)mant;
        return p;
    }
#if FLT_EVAL_METHOD == 0
    /* Clinger's fast path: an exact mantissa and an exact power of ten, so the one rounding of
     * the product or quotient is the correctly rounded value strtod returns. */
    if (!big && mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        out->d = neg ? -d : d;
        return p;
    }
#endif
    out->d = slow_strtod(s + pos, p - pos);
    return p;
}
