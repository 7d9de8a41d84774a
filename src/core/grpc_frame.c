/* gRPC wire details shared by the server (grpc_server.c) and the client (grpc_client.c): the
 * 5-byte message prefix, grpc-timeout, grpc-message percent-encoding, status names and the
 * HTTP status mapping, following the gRPC "PROTOCOL-HTTP2" document. Pure functions, no I/O. */
#include "core/grpc_frame.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *sl_grpc_code_name(int code) {
    switch (code) {
#define SL__GRPC_NAME(name, num)                                                                   \
    case num:                                                                                      \
        return #name;
        SL_GRPC_CODE_MAP(SL__GRPC_NAME)
#undef SL__GRPC_NAME
    default:
        return "UNKNOWN";
    }
}

/* ---- framing ---- */

void sl_grpc__prefix_write(uint8_t out[SL_GRPC_PREFIX_LEN], bool compressed, uint32_t len) {
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

int sl_grpc__prefix_parse(const uint8_t *p, size_t len, bool *compressed, uint32_t *msg_len) {
    if (len < SL_GRPC_PREFIX_LEN) return SL_EAGAIN;
    if (p[0] > 1) return SL_EPROTO;
    *compressed = p[0] == 1;
    *msg_len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | (uint32_t)p[4];
    return SL_OK;
}

void sl_grpc__frame_append(sl_buf_t *out, const void *msg, size_t len) {
    SL_ASSERT(len <= UINT32_MAX);
    uint8_t prefix[SL_GRPC_PREFIX_LEN];
    sl_grpc__prefix_write(prefix, false, (uint32_t)len);
    sl_buf_reserve(out, SL_GRPC_PREFIX_LEN + len);
    sl_buf_append(out, prefix, sizeof prefix);
    sl_buf_append(out, msg, len);
}

int sl_grpc__unary_parse(const uint8_t *p, size_t len, uint32_t max, const uint8_t **msg,
                         size_t *msg_len, const char **why) {
    bool compressed = false;
    uint32_t n = 0;
    if (len == 0) {
        *why = "no message (a unary call carries exactly one)";
        return SL_GRPC_INTERNAL;
    }
    int rc = sl_grpc__prefix_parse(p, len, &compressed, &n);
    if (rc == SL_EAGAIN) {
        *why = "truncated message prefix";
        return SL_GRPC_INTERNAL;
    }
    if (rc == SL_EPROTO) {
        *why = "invalid compressed-flag byte in message prefix";
        return SL_GRPC_INTERNAL;
    }
    if (compressed) {
        *why = "compression not supported";
        return SL_GRPC_UNIMPLEMENTED;
    }
    if (n > max) {
        *why = "message larger than the configured maximum";
        return SL_GRPC_RESOURCE_EXHAUSTED;
    }
    size_t body = len - SL_GRPC_PREFIX_LEN;
    if (body < n) {
        *why = "truncated message (shorter than its length prefix)";
        return SL_GRPC_INTERNAL;
    }
    if (body > n) {
        *why = "more than one message in a unary call";
        return SL_GRPC_INTERNAL;
    }
    *msg = p + SL_GRPC_PREFIX_LEN;
    *msg_len = n;
    *why = NULL;
    return SL_GRPC_OK;
}

/* ---- grpc-timeout ---- */

int sl_grpc__timeout_parse(sl_str_t v, uint64_t *ns) {
    if (v.len < 2 || v.len > 9) return SL_EPARSE;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        char c = v.ptr[i];
        if (c < '0' || c > '9') return SL_EPARSE;
        n = n * 10 + (uint64_t)(c - '0');
    }
    uint64_t unit;
    switch (v.ptr[v.len - 1]) {
    case 'H':
        unit = 3600ull * 1000000000ull;
        break;
    case 'M':
        unit = 60ull * 1000000000ull;
        break;
    case 'S':
        unit = 1000000000ull;
        break;
    case 'm':
        unit = 1000000ull;
        break;
    case 'u':
        unit = 1000ull;
        break;
    case 'n':
        unit = 1;
        break;
    default:
        return SL_EPARSE;
    }
    *ns = n * unit; /* at most 99999999 * 3.6e12 < 2^64 */
    return SL_OK;
}

size_t sl_grpc__timeout_format(uint64_t ms, char out[SL_GRPC_TIMEOUT_MAX_LEN]) {
    static const struct {
        uint64_t ms;
        char unit;
    } units[] = {{1, 'm'}, {1000, 'S'}, {60000, 'M'}, {3600000, 'H'}};
    const uint64_t max = 99999999;
    uint64_t v = max;
    char unit = 'H';
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        uint64_t n = ms / units[i].ms + (ms % units[i].ms != 0);
        if (n <= max) {
            v = n;
            unit = units[i].unit;
            break;
        }
    }
    int len = snprintf(out, SL_GRPC_TIMEOUT_MAX_LEN, "%llu%c", (unsigned long long)v, unit);
    return (size_t)len;
}

/* ---- grpc-message ---- */

void sl_grpc__message_encode(sl_buf_t *out, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    sl_buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            sl_buf_putc(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sl_buf_append(out, esc, 3);
        }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void sl_grpc__message_decode(sl_buf_t *out, const char *s, size_t n) {
    sl_buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            sl_buf_putc(out, (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2])));
            i += 2;
        } else {
            sl_buf_putc(out, s[i]);
        }
    }
}

/* ---- headers and status mapping ---- */

bool sl_grpc__content_type_ok(sl_str_t v) {
    static const char base[] = "application/grpc";
    size_t n = sizeof base - 1;
    if (v.len < n || strncasecmp(v.ptr, base, n) != 0) return false;
    return v.len == n || v.ptr[n] == '+' || v.ptr[n] == ';';
}

int sl_grpc__code_from_http(int http_status) {
    switch (http_status) {
    case 400:
        return SL_GRPC_INTERNAL;
    case 401:
        return SL_GRPC_UNAUTHENTICATED;
    case 403:
        return SL_GRPC_PERMISSION_DENIED;
    case 404:
        return SL_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return SL_GRPC_UNAVAILABLE;
    default:
        return SL_GRPC_UNKNOWN;
    }
}

/* ---- shared HTTP/2 plumbing ---- */

int sl_grpc__h2_collect(nghttp2_session *s, sl_buf_t *out, size_t max) {
    while (out->len < max) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s, &data);
        if (n < 0) return (int)n;
        if (n == 0) break;
        sl_buf_append(out, data, (size_t)n);
    }
    return 0;
}

void sl_grpc__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static _Thread_local char read_buf[64 * 1024];
    buf->base = read_buf;
    buf->len = sizeof read_buf;
}
