/* UTF-8 validation and repair (see utf8.h). */
#include "core/utf8.h"

#include "core/buf.h"

#include <string.h>

size_t sl_utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char c = s[0];
    size_t len, dummy;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (!bad) bad = &dummy;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0/C1 (always overlong) or F5..FF */
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xbf;
        if (i >= n || s[i] < min || s[i] > max) {
            *bad = i;
            return 0;
        }
    }
    return len;
}

char *sl_utf8_sanitize(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, bad;
    sl_buf_t b = SL_BUF_INIT; /* stays empty while s is valid */
    while (i < n) {
        size_t len = sl_utf8_seq(p + i, n - i, &bad);
        if (len) {
            if (b.data) sl_buf_append(&b, p + i, len);
            i += len;
            continue;
        }
        if (!b.data) sl_buf_append(&b, s, i); /* the valid prefix */
        sl_buf_append(&b, "\xef\xbf\xbd", 3);
        i += bad;
    }
    return b.data;
}
