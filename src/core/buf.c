/* Growable byte buffer used for responses, rendered metrics, logs and JSON output. */
#include "core/buf.h"

#include "core/common.h"
#include "core/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_buf_reserve(sl_buf_t *b, size_t n) {
    if (b->len + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->data = sl_realloc(b->data, cap);
    b->cap = cap;
}

void sl_buf_append(sl_buf_t *b, const void *data, size_t n) {
    sl_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sl_buf_puts(sl_buf_t *b, const char *s) {
    sl_buf_append(b, s, strlen(s));
}

void sl_buf_putc(sl_buf_t *b, char c) {
    sl_buf_append(b, &c, 1);
}

void sl_buf_vprintf(sl_buf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    sl_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        sl_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0) b->len += (size_t)n;
}

void sl_buf_printf(sl_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void sl_buf_json_escape(sl_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', '0', '0'};
    const unsigned char *p = (const unsigned char *)s;
    sl_buf_reserve(b, n);
    b->data[b->len] = '\0'; /* terminated even when n is 0 */
    size_t i = 0;
    while (i < n) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\') {
            run++;
        }
        if (run > i) {
            sl_buf_append(b, p + i, run - i);
            i = run;
            if (i == n) break;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t bad = 0, len = sl_utf8_seq(p + i, n - i, &bad);
            if (len) {
                sl_buf_append(b, p + i, len);
                i += len;
            } else {
                sl_buf_append(b, "\\ufffd", 6);
                i += bad;
            }
            continue;
        }
        switch (c) {
        case '"':
            sl_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            sl_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            sl_buf_append(b, "\\n", 2);
            break;
        case '\r':
            sl_buf_append(b, "\\r", 2);
            break;
        case '\t':
            sl_buf_append(b, "\\t", 2);
            break;
        default: /* other control characters and DEL */
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            sl_buf_append(b, esc, 6);
        }
        i++;
    }
}

void sl_buf_reset(sl_buf_t *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void sl_buf_consume(sl_buf_t *b, size_t n) {
    if (n >= b->len) {
        sl_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void sl_buf_free(sl_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sl_fmt_u64(char *p, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char *sl_fmt_i64(char *p, int64_t v) {
    if (v < 0) {
        *p++ = '-';
        return sl_fmt_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return sl_fmt_u64(p, (uint64_t)v);
}

void sl_buf_put_u64(sl_buf_t *b, uint64_t v) {
    char tmp[20];
    sl_buf_append(b, tmp, (size_t)(sl_fmt_u64(tmp, v) - tmp));
}

void sl_buf_put_i64(sl_buf_t *b, int64_t v) {
    char tmp[21];
    sl_buf_append(b, tmp, (size_t)(sl_fmt_i64(tmp, v) - tmp));
}
