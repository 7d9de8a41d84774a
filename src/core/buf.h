/* A growable byte buffer, reused across requests on the hot path (reset keeps the capacity). */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_buf {
    char *data; /* owned; NUL-terminated after every append (not counted in len) */
    size_t len;
    size_t cap;
} sl_buf_t;

#define SL_BUF_INIT                                                                                \
    { NULL, 0, 0 }

/* Makes room for n more bytes; aborts on out of memory (server policy). */
void sl_buf_reserve(sl_buf_t *b, size_t n);
void sl_buf_append(sl_buf_t *b, const void *data, size_t n);
void sl_buf_puts(sl_buf_t *b, const char *s);
void sl_buf_putc(sl_buf_t *b, char c);
void sl_buf_printf(sl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_buf_vprintf(sl_buf_t *b, const char *fmt, va_list ap);
/* Decimal integers without printf (hot paths: response heads, JSON tensors). sl_fmt_u64 and
 * sl_fmt_i64 write at most 20 bytes at p (no NUL) and return the end. */
char *sl_fmt_u64(char *p, uint64_t v);
char *sl_fmt_i64(char *p, int64_t v);
void sl_buf_put_u64(sl_buf_t *b, uint64_t v);
void sl_buf_put_i64(sl_buf_t *b, int64_t v);
/* Appends s as the inside of a JSON string (escaped, no quotes added). */
void sl_buf_json_escape(sl_buf_t *b, const char *s, size_t n);
/* Empties the buffer but keeps its memory for reuse. */
void sl_buf_reset(sl_buf_t *b);
/* Drops the first n bytes (for consumed input). */
void sl_buf_consume(sl_buf_t *b, size_t n);
void sl_buf_free(sl_buf_t *b);

#endif
