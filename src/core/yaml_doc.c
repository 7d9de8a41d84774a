/* A generic YAML document tree built from libyaml's event stream, with limits checked while it
 * is built (size before parsing; depth, node count and scalar length per event), so a hostile
 * file costs bounded memory and time. The model config parser walks this tree. */
#include "core/yaml_doc.h"

#include "core/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define DEF_MAX_BYTES  (1u << 20)
#define DEF_MAX_DEPTH  32u
#define DEF_MAX_NODES  20000u
#define DEF_MAX_SCALAR (64u << 10)
#define HARD_MAX_DEPTH 64u

typedef struct {
    const char *file;
    sl_buf_t *err;
    sl_yaml_limits_t lim;
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_ev;
    size_t nodes;
    unsigned depth;
    sl_yaml_node_t *stack[HARD_MAX_DEPTH];
    sl_yaml_node_t *pending_key[HARD_MAX_DEPTH]; /* per open mapping: a key awaiting its value */
    sl_yaml_node_t *root;
    bool failed;
    int status;
} builder_t;

static void fail(builder_t *b, int status, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(builder_t *b, int status, size_t line, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = true;
    b->status = status;
    if (line)
        sl_buf_printf(b->err, "%s:%zu: ", b->file, line);
    else
        sl_buf_printf(b->err, "%s: ", b->file);
    size_t start = b->err->len;
    va_list ap;
    va_start(ap, fmt);
    sl_buf_vprintf(b->err, fmt, ap);
    va_end(ap);
    /* Messages may quote keys with line breaks: one problem, one line. */
    for (size_t i = start; i < b->err->len; i++) {
        unsigned char ch = (unsigned char)b->err->data[i];
        if (ch < 0x20 || ch == 0x7f) b->err->data[i] = '?';
    }
    sl_buf_putc(b->err, '\n');
}

static void node_free(sl_yaml_node_t *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->items[i]);
        if (n->keys) node_free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->value);
    free(n);
}

static sl_yaml_node_t *node_new(builder_t *b, sl_yaml_kind_t kind) {
    size_t line = b->ev.start_mark.line + 1;
    if (++b->nodes > b->lim.max_nodes) {
        fail(b, SL_ELIMIT, line, "more than %zu YAML nodes", b->lim.max_nodes);
        return NULL;
    }
    sl_yaml_node_t *n = sl_calloc(1, sizeof *n);
    n->kind = kind;
    n->line = (uint32_t)SL_MIN(line, (size_t)UINT32_MAX);
    return n;
}

/* Appends to an array whose capacity is the next power of two >= n (at least 4). */
static sl_yaml_node_t **grow(sl_yaml_node_t **arr, size_t n) {
    if (n == 0) return sl_malloc(4 * sizeof *arr);
    if (n < 4 || (n & (n - 1)) != 0) return arr;
    return sl_realloc(arr, 2 * n * sizeof *arr);
}

/* Attaches a finished node to the open collection (or makes it the root). Takes ownership. */
static void attach(builder_t *b, sl_yaml_node_t *n) {
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    sl_yaml_node_t *top = b->stack[b->depth - 1];
    if (top->kind == SL_YAML_SEQ) {
        top->items = grow(top->items, top->n);
        top->items[top->n++] = n;
        return;
    }
    sl_yaml_node_t **key = &b->pending_key[b->depth - 1];
    if (!*key) {
        if (n->kind != SL_YAML_SCALAR) {
            fail(b, SL_EPARSE, n->line, "mapping keys must be scalars, not %s",
                 sl_yaml_kind_name(n->kind));
            node_free(n);
            return;
        }
        for (size_t i = 0; i < top->n; i++) {
            if (strcmp(top->keys[i]->value, n->value) == 0) {
                fail(b, SL_EPARSE, n->line, "duplicate key '%.64s' (first on line %" PRIu32 ")",
                     n->value, top->keys[i]->line);
                node_free(n);
                return;
            }
        }
        *key = n;
        return;
    }
    top->items = grow(top->items, top->n);
    top->keys = grow(top->keys, top->n);
    top->keys[top->n] = *key;
    top->items[top->n++] = n;
    *key = NULL;
}

static void syntax_error(builder_t *b) {
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        fail(b, SL_EPARSE, 0, "YAML syntax error: %s at byte %zu", problem, p->problem_offset);
    } else if (p->context) {
        fail(b, SL_EPARSE, p->problem_mark.line + 1, "YAML syntax error: %s (%s on line %zu)",
             problem, p->context, p->context_mark.line + 1);
    } else {
        fail(b, SL_EPARSE, p->problem_mark.line + 1, "YAML syntax error: %s", problem);
    }
}

static bool refuse_extras(builder_t *b, const yaml_char_t *anchor, const yaml_char_t *tag,
                          bool tag_implicit) {
    size_t line = b->ev.start_mark.line + 1;
    if (anchor) {
        fail(b, SL_EPARSE, line, "YAML anchors (&%.64s) are not allowed", (const char *)anchor);
        return false;
    }
    if (tag && !tag_implicit) {
        fail(b, SL_EPARSE, line, "YAML tags (%.64s) are not allowed", (const char *)tag);
        return false;
    }
    return true;
}

/* Handles one event; false once the document is complete or an error occurred. */
static bool step(builder_t *b, int *documents) {
    yaml_event_t *ev = &b->ev;
    size_t line = ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_NO_EVENT:
        return true;
    case YAML_STREAM_END_EVENT:
        return false;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1) {
            fail(b, SL_EPARSE, line, "only one YAML document is allowed");
            return false;
        }
        return true;
    case YAML_DOCUMENT_END_EVENT:
        return true;
    case YAML_ALIAS_EVENT:
        fail(b, SL_EPARSE, line, "YAML aliases (*%.64s) are not allowed",
             (const char *)ev->data.alias.anchor);
        return false;
    case YAML_SCALAR_EVENT: {
        if (!refuse_extras(b, ev->data.scalar.anchor, ev->data.scalar.tag,
                           ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit)) {
            return false;
        }
        if (ev->data.scalar.length > b->lim.max_scalar_bytes) {
            fail(b, SL_ELIMIT, line, "scalar of %zu bytes is longer than the limit of %zu",
                 ev->data.scalar.length, b->lim.max_scalar_bytes);
            return false;
        }
        sl_yaml_node_t *n = node_new(b, SL_YAML_SCALAR);
        if (!n) return false;
        n->len = ev->data.scalar.length;
        n->value = sl_strndup((const char *)ev->data.scalar.value, n->len);
        if (strlen(n->value) != n->len) {
            node_free(n);
            fail(b, SL_EPARSE, line, "scalar contains a NUL character");
            return false;
        }
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        attach(b, n);
        return !b->failed;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        if (seq ? !refuse_extras(b, ev->data.sequence_start.anchor, ev->data.sequence_start.tag,
                                 ev->data.sequence_start.implicit)
                : !refuse_extras(b, ev->data.mapping_start.anchor, ev->data.mapping_start.tag,
                                 ev->data.mapping_start.implicit)) {
            return false;
        }
        if (b->depth >= b->lim.max_depth) {
            fail(b, SL_ELIMIT, line, "nesting deeper than %u levels", b->lim.max_depth);
            return false;
        }
        sl_yaml_node_t *n = node_new(b, seq ? SL_YAML_SEQ : SL_YAML_MAP);
        if (!n) return false;
        b->stack[b->depth] = n;
        b->pending_key[b->depth] = NULL;
        b->depth++;
        return true;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        SL_ASSERT(b->depth > 0);
        b->depth--;
        sl_yaml_node_t *n = b->stack[b->depth];
        b->stack[b->depth] = NULL;
        SL_ASSERT(b->pending_key[b->depth] == NULL); /* libyaml pairs keys with values */
        attach(b, n);
        return !b->failed;
    }
    }
    return true;
}

int sl_yaml_doc_parse(const char *file, const void *data, size_t len, const sl_yaml_limits_t *lim,
                      sl_yaml_doc_t **out, sl_buf_t *err) {
    builder_t b = {.file = file, .err = err};
    if (lim) b.lim = *lim;
    if (!b.lim.max_bytes) b.lim.max_bytes = DEF_MAX_BYTES;
    if (!b.lim.max_depth || b.lim.max_depth > HARD_MAX_DEPTH) {
        b.lim.max_depth = b.lim.max_depth ? HARD_MAX_DEPTH : DEF_MAX_DEPTH;
    }
    if (!b.lim.max_nodes) b.lim.max_nodes = DEF_MAX_NODES;
    if (!b.lim.max_scalar_bytes) b.lim.max_scalar_bytes = DEF_MAX_SCALAR;
    *out = NULL;
    if (len > b.lim.max_bytes) {
        fail(&b, SL_ELIMIT, 0, "file of %zu bytes is larger than the limit of %zu", len,
             b.lim.max_bytes);
        return b.status;
    }
    if (!yaml_parser_initialize(&b.parser)) abort(); /* only fails on out of memory */
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)(len ? data : ""), len);
    int documents = 0;
    for (;;) {
        if (!yaml_parser_parse(&b.parser, &b.ev)) {
            syntax_error(&b);
            break;
        }
        bool more = step(&b, &documents);
        yaml_event_delete(&b.ev);
        if (!more || b.failed) break;
    }
    yaml_parser_delete(&b.parser);
    /* On failure, free what was built: the open collections (with their pending keys). */
    for (unsigned i = b.depth; i-- > 0;) {
        node_free(b.pending_key[i]);
        node_free(b.stack[i]);
    }
    if (b.failed) {
        node_free(b.root);
        return b.status;
    }
    sl_yaml_doc_t *doc = sl_calloc(1, sizeof *doc);
    doc->root = b.root;
    *out = doc;
    return 0;
}

void sl_yaml_doc_free(sl_yaml_doc_t *doc) {
    if (!doc) return;
    node_free(doc->root);
    free(doc);
}

const sl_yaml_node_t *sl_yaml_map_get(const sl_yaml_node_t *map, const char *key) {
    if (!map || map->kind != SL_YAML_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i]->value, key) == 0) return map->items[i];
    }
    return NULL;
}

bool sl_yaml_is_null(const sl_yaml_node_t *n) {
    if (!n || n->kind != SL_YAML_SCALAR || !n->plain) return false;
    const char *s = n->value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const char *sl_yaml_kind_name(sl_yaml_kind_t k) {
    switch (k) {
    case SL_YAML_SCALAR:
        return "a scalar";
    case SL_YAML_SEQ:
        return "a sequence";
    case SL_YAML_MAP:
        return "a mapping";
    }
    return "a node";
}

int sl_yaml_get_int64(const sl_yaml_node_t *n, int64_t min, int64_t max, int64_t *out) {
    if (!n || n->kind != SL_YAML_SCALAR || !n->plain || n->len == 0) return SL_EINVAL;
    const char *s = n->value;
    size_t i = s[0] == '-' ? 1 : 0;
    if (s[i] == '\0') return SL_EINVAL;
    for (size_t j = i; s[j]; j++) {
        if (s[j] < '0' || s[j] > '9') return SL_EINVAL;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return SL_ERANGE;
    if (*end) return SL_EINVAL;
    if (v < min || v > max) return SL_ERANGE;
    *out = v;
    return 0;
}

int sl_yaml_get_bool(const sl_yaml_node_t *n, bool *out) {
    if (!n || n->kind != SL_YAML_SCALAR || !n->plain) return SL_EINVAL;
    const char *s = n->value;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *out = false;
        return 0;
    }
    return SL_EINVAL;
}

/* ---- problem reports ---- */

void sl_yaml_verror(sl_yaml_errors_t *e, const sl_yaml_node_t *at, int status, const char *fmt,
                    va_list ap) {
    int max = e->max > 0 ? e->max : 20;
    if (!e->status) e->status = status;
    if (++e->n > max) return;
    if (at)
        sl_buf_printf(e->out, "%s:%" PRIu32 ": ", e->file, at->line);
    else
        sl_buf_printf(e->out, "%s: ", e->file);
    if (e->n == max) {
        sl_buf_puts(e->out, "too many errors, stopping here\n");
        return;
    }
    size_t start = e->out->len;
    sl_buf_vprintf(e->out, fmt, ap);
    for (size_t i = start; i < e->out->len; i++) {
        unsigned char ch = (unsigned char)e->out->data[i];
        if (ch < 0x20 || ch == 0x7f) e->out->data[i] = '?';
    }
    sl_buf_putc(e->out, '\n');
}

void sl_yaml_error(sl_yaml_errors_t *e, const sl_yaml_node_t *at, int status, const char *fmt,
                   ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_yaml_verror(e, at, status, fmt, ap);
    va_end(ap);
}

void sl_yaml_check_keys(sl_yaml_errors_t *e, const sl_yaml_node_t *map, const char *const *allowed,
                        const char *where) {
    for (size_t i = 0; i < map->n; i++) {
        const sl_yaml_node_t *k = map->keys[i];
        const char *best = NULL;
        size_t best_d = SIZE_MAX;
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++) {
            ok = strcmp(allowed[j], k->value) == 0;
            size_t d = sl_str_edit_distance(allowed[j], k->value);
            if (d < best_d) {
                best_d = d;
                best = allowed[j];
            }
        }
        if (ok) continue;
        const char *in = where[0] ? " in " : "";
        if (best && best_d <= 3) {
            sl_yaml_error(e, k, SL_EINVAL, "unknown key '%.64s'%s%s (did you mean '%s'?)", k->value,
                          in, where, best);
        } else {
            sl_buf_t list = SL_BUF_INIT;
            for (size_t j = 0; allowed[j]; j++)
                sl_buf_printf(&list, "%s%s", j ? ", " : "", allowed[j]);
            sl_yaml_error(e, k, SL_EINVAL, "unknown key '%.64s'%s%s (expected one of: %s)",
                          k->value, in, where, list.data);
            sl_buf_free(&list);
        }
    }
}

bool sl_yaml_want(sl_yaml_errors_t *e, const sl_yaml_node_t *n, sl_yaml_kind_t kind,
                  const char *what) {
    if (n->kind == kind) return true;
    sl_yaml_error(e, n, SL_EINVAL, "%s must be %s, not %s", what, sl_yaml_kind_name(kind),
                  sl_yaml_kind_name(n->kind));
    return false;
}
