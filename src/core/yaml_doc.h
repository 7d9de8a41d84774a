/* A small generic YAML document tree on libyaml: mappings, sequences and scalars, each node with
 * its line number, built with limits on input size, nesting depth, node count and scalar length.
 * For files whose schema is nested and data-driven (model config.yaml); the server's own config
 * keeps its table-driven loader (config.c). Anchors, aliases, tags and multiple documents are
 * refused, so a document is a plain tree and its size is bounded by the limits. */
#ifndef SL_YAML_DOC_H
#define SL_YAML_DOC_H

#include "core/buf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sl_yaml_kind {
    SL_YAML_SCALAR = 0,
    SL_YAML_SEQ,
    SL_YAML_MAP,
} sl_yaml_kind_t;

typedef struct sl_yaml_node sl_yaml_node_t;

/* Nodes are owned by their document and live until sl_yaml_doc_free. */
struct sl_yaml_node {
    sl_yaml_kind_t kind;
    uint32_t line; /* 1-based line of the node's first character */
    /* SL_YAML_SCALAR: the value (NUL-terminated; len excludes the NUL) and whether it was
     * written plain (unquoted), which is what makes `~`, `null` and `` null. */
    char *value;
    size_t len;
    bool plain;
    /* SL_YAML_SEQ: items[0..n). SL_YAML_MAP: keys[i] (always scalars, unique) -> items[i], in
     * document order. */
    sl_yaml_node_t **items;
    sl_yaml_node_t **keys;
    size_t n;
};

typedef struct sl_yaml_doc {
    sl_yaml_node_t *root; /* NULL for an empty document */
} sl_yaml_doc_t;

typedef struct sl_yaml_limits {
    size_t max_bytes;        /* input size; 0: 1 MiB */
    unsigned max_depth;      /* nested collections; 0: 32 */
    size_t max_nodes;        /* nodes in the document; 0: 100000 */
    size_t max_scalar_bytes; /* one scalar's length; 0: 64 KiB */
} sl_yaml_limits_t;

/* Parses one YAML document from data[0..len) (borrowed). file names the input in messages
 * ("config.yaml:12: ..."). lim may be NULL for the defaults. Returns 0 and *out (free with
 * sl_yaml_doc_free), or SL_EPARSE (syntax, duplicate key, non-scalar key, anchor/alias/tag,
 * several documents) / SL_ELIMIT with *out NULL and one "file:line: message" line appended to
 * err. */
int sl_yaml_doc_parse(const char *file, const void *data, size_t len, const sl_yaml_limits_t *lim,
                      sl_yaml_doc_t **out, sl_buf_t *err);
void sl_yaml_doc_free(sl_yaml_doc_t *doc);

/* The value under key in map (NULL when map is not a mapping or has no such key). Borrowed. */
const sl_yaml_node_t *sl_yaml_map_get(const sl_yaml_node_t *map, const char *key);
/* True for a plain scalar "", "~", "null", "Null" or "NULL". */
bool sl_yaml_is_null(const sl_yaml_node_t *n);
/* "a scalar", "a sequence", "a mapping": for messages. */
const char *sl_yaml_kind_name(sl_yaml_kind_t k);

/* Scalar conversions; each returns 0, or SL_EINVAL when n is not a scalar of that type,
 * SL_ERANGE when it is outside [min, max]. Integers are decimal (optional sign, no leading
 * '+', underscores not allowed); booleans are true/false/True/False/TRUE/FALSE. */
int sl_yaml_get_int64(const sl_yaml_node_t *n, int64_t min, int64_t max, int64_t *out);
int sl_yaml_get_bool(const sl_yaml_node_t *n, bool *out);

/* Problem reports for parsers built on the tree (model config.yaml, gateway traffic
 * policies): one "file:line: message" line per problem, control bytes in a message (which may
 * quote config values) replaced by '?', at most max problems (then one "too many errors"
 * line). status keeps the first problem's status (0 while there is none). */
typedef struct sl_yaml_errors {
    const char *file;
    sl_buf_t *out; /* borrowed */
    int max;       /* 0: 20 */
    int n;         /* problems reported */
    int status;
} sl_yaml_errors_t;

void sl_yaml_error(sl_yaml_errors_t *e, const sl_yaml_node_t *at, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sl_yaml_verror(sl_yaml_errors_t *e, const sl_yaml_node_t *at, int status, const char *fmt,
                    va_list ap);
/* True when n is of kind; else reports (SL_EINVAL) "<what> must be <kind>, not <kind>" and
 * returns false. */
bool sl_yaml_want(sl_yaml_errors_t *e, const sl_yaml_node_t *n, sl_yaml_kind_t kind,
                  const char *what);
/* Reports (SL_EINVAL) every key of map not in allowed (NULL-terminated), suggesting the
 * closest allowed key when it is a likely typo, else listing them; where ("dynamic_batching")
 * may be "" at the top level. */
void sl_yaml_check_keys(sl_yaml_errors_t *e, const sl_yaml_node_t *map, const char *const *allowed,
                        const char *where);

#endif
