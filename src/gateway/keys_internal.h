/* Private to the keys module: the table's layout and the helpers keys.c (table, lookup, reload,
 * create) and keys_file.c (parse, load, save) share. Nothing outside src/gateway/keys*.c
 * includes this; the public API is keys.h. */
#ifndef SL_GATEWAY_KEYS_INTERNAL_H
#define SL_GATEWAY_KEYS_INTERNAL_H

#include "gateway/keys.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SL_KEYS__DIGEST_LEN 32 /* bytes of a SHA-256 digest */

typedef struct sl_keys__entry {
    sl_key_info_t info; /* its strings are owned by the entry */
    uint8_t digest[SL_KEYS__DIGEST_LEN];
} sl_keys__entry_t;

struct sl_keys {
    atomic_size_t refs;
    sl_keys__entry_t **v; /* separately allocated, so borrowed sl_key_info_t pointers never move */
    size_t n, cap;
    uint32_t *slots; /* index + 1 into v; 0 is empty */
    size_t mask;     /* slot count - 1 (a power of two) */
};

/* --- keys.c -------------------------------------------------------------------------------- */

/* Appends e to t (ownership moves into t); the digest index is stale until
 * sl_keys__index_build. */
void sl_keys__table_push(sl_keys_t *t, sl_keys__entry_t *e);
/* Rebuilds the digest index for t->n entries. Returns the index of an entry whose digest
 * repeats an earlier one, or SIZE_MAX. */
size_t sl_keys__index_build(sl_keys_t *t);
/* Writes in[0..n) as 2n lower-case hex digits and a NUL into out. */
void sl_keys__hex_encode(const uint8_t *in, size_t n, char *out);

/* --- keys_file.c --------------------------------------------------------------------------- */

/* snprintf into err (NULL or err_len 0: nothing is written). */
void sl_keys__seterr(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Field syntax shared by the parser and sl_keys_create (see sl_key_info_t). */
bool sl_keys__valid_tenant(const char *s);
bool sl_keys__valid_tier(const char *s);
/* Opens path read-only and fstats it into *st. Returns 0 with *fd open (the caller closes it),
 * or SL_ENOENT / SL_EIO with *fd -1 and "cannot open: ..." in err. */
int sl_keys__open_file(const char *path, int *fd, struct stat *st, char *err, size_t err_len);
/* Reads the open file fd (borrowed; st is its fstat) and parses it as sl_keys_parse does. */
int sl_keys__load_fd(int fd, const struct stat *st, sl_keys_t **out, char *err, size_t err_len);

#endif
