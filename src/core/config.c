/* Loading the YAML configuration: libyaml's event parser walked against the option table, with
 * ${} references expanded, hostile-input limits enforced on the way, and every error collected
 * as "file:line: message" rather than stopping at the first. Values are interpreted by
 * config_options.c. */
#include "core/config.h"

#include "core/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Errors */

static bool errs_add(sl_config_errors_t *errs, const char *msg) {
    if (errs->n >= SL_CONFIG_MAX_ERRORS) {
        errs->truncated = true;
        return false;
    }
    if (errs->n == errs->cap) {
        errs->cap = errs->cap ? errs->cap * 2 : 8;
        errs->msgs = sl_realloc(errs->msgs, errs->cap * sizeof *errs->msgs);
    }
    errs->msgs[errs->n++] = sl_strdup(msg);
    return true;
}

void sl_config_errors_free(sl_config_errors_t *errs) {
    if (!errs) return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    *errs = (sl_config_errors_t)SL_CONFIG_ERRORS_INIT;
}

/* Reads a regular file (FIFOs and devices refused: they could block or never end) of at most
 * max bytes. On failure returns SL_EIO or SL_ELIMIT and writes the reason to why. */
static int read_regular_file(const char *path, size_t max, sl_buf_t *out, sl_buf_t *why) {
    sl_buf_reset(out);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        sl_buf_printf(why, "cannot open: %s", strerror(errno));
        return SL_EIO;
    }
    struct stat st;
    int rc = SL_OK;
    if (fstat(fd, &st) != 0) {
        sl_buf_printf(why, "cannot stat: %s", strerror(errno));
        rc = SL_EIO;
    } else if (!S_ISREG(st.st_mode)) {
        sl_buf_puts(why, "not a regular file");
        rc = SL_EIO;
    } else if ((uint64_t)st.st_size > max) {
        sl_buf_printf(why, "larger than the limit of %zu bytes", max);
        rc = SL_ELIMIT;
    }
    /* Read to EOF anyway: the size may have changed since fstat. */
    while (rc == SL_OK) {
        sl_buf_reserve(out, 4096);
        size_t room = SL_MIN(out->cap - out->len - 1, max + 1 - out->len);
        ssize_t got = read(fd, out->data + out->len, room);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            sl_buf_printf(why, "cannot read: %s", strerror(errno));
            rc = SL_EIO;
            break;
        }
        if (got == 0) break;
        out->len += (size_t)got;
        out->data[out->len] = '\0';
        if (out->len > max) {
            sl_buf_printf(why, "larger than the limit of %zu bytes", max);
            rc = SL_ELIMIT;
        }
    }
    close(fd);
    if (rc != SL_OK) sl_buf_reset(out);
    return rc;
}

int sl_config__read_file(const char *path, size_t max, sl_buf_t *out, sl_config_errors_t *errs) {
    sl_buf_t why = SL_BUF_INIT;
    int rc = read_regular_file(path, max, out, &why);
    if (rc != SL_OK && errs) {
        sl_buf_t msg = SL_BUF_INIT;
        sl_buf_printf(&msg, "%s: %s", path, why.data);
        errs_add(errs, msg.data);
        sl_buf_free(&msg);
    }
    sl_buf_free(&why);
    return rc;
}

/* The loader */

typedef struct {
    char *name;
    size_t line;
} seen_t;

typedef struct {
    const char *name; /* for messages */
    const unsigned char *data;
    size_t len;
    sl_config_t *cfg;
    sl_config_errors_t *errs;
    size_t n_errors;
    bool stop; /* syntax error, nesting limit or error limit: no more events */
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_ev;
    bool bad_scalar; /* the current scalar broke a limit (already reported) */
    int depth;
    size_t *opt_line; /* per option: line that set it, 0 = not set */
    seen_t *sections;
    size_t n_sections;
} loader_t;

static void error_at(loader_t *L, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(loader_t *L, size_t line, const char *fmt, ...) {
    sl_buf_t msg = SL_BUF_INIT;
    if (line)
        sl_buf_printf(&msg, "%s:%zu: ", L->name, line);
    else
        sl_buf_printf(&msg, "%s: ", L->name);
    va_list ap;
    va_start(ap, fmt);
    sl_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    L->n_errors++;
    if (!errs_add(L->errs, msg.data)) L->stop = true;
    sl_buf_free(&msg);
}

static size_t ev_line(const loader_t *L) {
    return L->ev.start_mark.line + 1;
}

static size_t line_of_offset(const loader_t *L, size_t off) {
    size_t line = 1;
    for (size_t i = 0; i < off && i < L->len; i++)
        line += L->data[i] == '\n';
    return line;
}

static void syntax_error(loader_t *L) {
    const yaml_parser_t *p = &L->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        error_at(L, line_of_offset(L, p->problem_offset), "YAML syntax error: %s at byte %zu",
                 problem, p->problem_offset);
    } else if (p->context) {
        error_at(L, p->problem_mark.line + 1, "YAML syntax error: %s (%s on line %zu)", problem,
                 p->context, p->context_mark.line + 1);
    } else {
        error_at(L, p->problem_mark.line + 1, "YAML syntax error: %s", problem);
    }
}

static void refuse_anchor(loader_t *L, const yaml_char_t *anchor) {
    if (anchor) error_at(L, ev_line(L), "YAML anchors (&%.64s) are not allowed", anchor);
}

/* Moves to the next event, enforcing the limits. False when there is none (stop). */
static bool next(loader_t *L) {
    if (L->have_ev) yaml_event_delete(&L->ev);
    L->have_ev = false;
    L->bad_scalar = false;
    if (L->stop) return false;
    if (!yaml_parser_parse(&L->parser, &L->ev)) {
        syntax_error(L);
        L->stop = true;
        return false;
    }
    L->have_ev = true;
    switch (L->ev.type) {
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        refuse_anchor(L, L->ev.type == YAML_MAPPING_START_EVENT ? L->ev.data.mapping_start.anchor
                                                                : L->ev.data.sequence_start.anchor);
        if (++L->depth > SL_CONFIG_MAX_DEPTH) {
            error_at(L, ev_line(L), "nesting deeper than %d levels", SL_CONFIG_MAX_DEPTH);
            L->stop = true;
            return false;
        }
        break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        L->depth--;
        break;
    case YAML_SCALAR_EVENT:
        refuse_anchor(L, L->ev.data.scalar.anchor);
        if (L->ev.data.scalar.length > SL_CONFIG_MAX_SCALAR_BYTES) {
            error_at(L, ev_line(L), "scalar of %zu bytes is longer than the limit of %u",
                     L->ev.data.scalar.length, SL_CONFIG_MAX_SCALAR_BYTES);
            L->bad_scalar = true;
        }
        break;
    case YAML_ALIAS_EVENT:
        error_at(L, ev_line(L), "YAML aliases (*%.64s) are not allowed", L->ev.data.alias.anchor);
        break;
    default:
        break;
    }
    return !L->stop;
}

/* Skips the node starting at the current event (a scalar, an alias or a whole collection). */
static bool skip_node(loader_t *L) {
    if (L->ev.type != YAML_MAPPING_START_EVENT && L->ev.type != YAML_SEQUENCE_START_EVENT) {
        return true;
    }
    int depth = L->depth;
    while (L->depth >= depth) {
        if (!next(L)) return false;
    }
    return true;
}

static bool is_null(const yaml_event_t *ev) {
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = (const char *)ev->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *node_kind(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "a scalar";
    }
}

/* Suggestions for unknown names */

/* True when some option lives under prefix ("server" for "server.io_threads"). */
static bool is_section(const char *prefix) {
    size_t n, pl = strlen(prefix);
    const sl_config_option_t *opts = sl_config_options(&n);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(opts[i].name, prefix, pl) == 0 && opts[i].name[pl] == '.') return true;
    }
    return false;
}

static bool is_owned(const char *name) {
    size_t n;
    const sl_config_owned_key_t *keys = sl_config_owned_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].name, name) == 0) return true;
    }
    return false;
}

/* Appends " (did you mean 'x'?)" when a known option or section is close to name. */
static void suggest(sl_buf_t *msg, const char *name) {
    size_t n, len = strlen(name);
    const sl_config_option_t *opts = sl_config_options(&n);
    if (len > 64) return;
    if (sl_config_option_find(name) && strchr(name, '.')) {
        /* A dotted key at the wrong level: "server.io_threads: 2" at the top. */
        const char *dot = strchr(name, '.');
        sl_buf_printf(msg, " (write it as nested maps: '%.*s: {%s: ...}')", (int)(dot - name), name,
                      dot + 1);
        return;
    }
    char best[128] = "", cand[128];
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        /* Every option name and each of its section prefixes is a candidate. */
        for (const char *p = opts[i].name;; p++) {
            if (*p != '.' && *p != '\0') continue;
            size_t cl = (size_t)(p - opts[i].name);
            if (cl < sizeof cand) {
                memcpy(cand, opts[i].name, cl);
                cand[cl] = '\0';
                size_t d = sl_str_edit_distance(name, cand);
                if (d < best_d) {
                    best_d = d;
                    memcpy(best, cand, cl + 1);
                }
            }
            if (*p == '\0') break;
        }
    }
    size_t n_owned;
    const sl_config_owned_key_t *owned = sl_config_owned_keys(&n_owned);
    for (size_t i = 0; i < n_owned; i++) {
        size_t d = sl_str_edit_distance(name, owned[i].name);
        if (d < best_d && strlen(owned[i].name) < sizeof best) {
            best_d = d;
            strcpy(best, owned[i].name);
        }
    }
    size_t limit = len >= 10 ? 3 : len >= 4 ? 2 : 1;
    if (best_d <= limit) {
        sl_buf_printf(msg, " (did you mean '%s'?)", best);
        return;
    }
    /* A shortened name ("log.rate") or the right name in the wrong section ("server.grpc_port"):
     * suggest it when only one option fits. */
    const char *leaf = strrchr(name, '.');
    if (!leaf || strlen(leaf) < 4) return;
    for (int rule = 0; rule < 2; rule++) {
        const sl_config_option_t *match = NULL;
        bool ambiguous = false;
        for (size_t i = 0; i < n; i++) {
            const char *ol = strrchr(opts[i].name, '.');
            bool fits = rule == 0 ? strncmp(opts[i].name, name, len) == 0 : strcmp(ol, leaf) == 0;
            if (fits) {
                ambiguous = match != NULL;
                match = &opts[i];
            }
        }
        if (match && !ambiguous) {
            sl_buf_printf(msg, " (did you mean '%s'?)", match->name);
            return;
        }
    }
}

/* ${} references */

static bool valid_env_name(const char *s, size_t len) {
    if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool expand_file(loader_t *L, size_t line, const char *opt, const char *path, size_t plen,
                        sl_buf_t *out) {
    char *p = sl_strndup(path, plen);
    bool ok = false;
    if (p[0] != '/' || strlen(p) != plen) {
        error_at(L, line, "%s: ${file:...} needs an absolute path, got '%.256s'", opt, p);
    } else {
        sl_buf_t content = SL_BUF_INIT, why = SL_BUF_INIT;
        if (read_regular_file(p, SL_CONFIG_MAX_SECRET_BYTES, &content, &why) != SL_OK) {
            error_at(L, line, "%s: cannot read secret file '%.256s': %s", opt, p, why.data);
        } else {
            size_t n = content.len;
            if (n && content.data[n - 1] == '\n') n--;
            if (n && content.data[n - 1] == '\r') n--;
            sl_buf_append(out, content.data, n);
            ok = true;
        }
        sl_buf_free(&content);
        sl_buf_free(&why);
    }
    free(p);
    return ok;
}

/* Expands ${NAME}, ${NAME:-default}, ${file:/path} and $${ in s into out. *used tells whether
 * any reference was expanded. False (with errors recorded) on a bad or unresolvable one. */
static bool expand(loader_t *L, size_t line, const char *opt, const char *s, size_t len,
                   sl_buf_t *out, bool *used) {
    *used = false;
    bool ok = true;
    for (size_t i = 0; i < len;) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            sl_buf_puts(out, "${");
            i += 3;
            continue;
        }
        if (!(s[i] == '$' && i + 1 < len && s[i + 1] == '{')) {
            sl_buf_putc(out, s[i++]);
            continue;
        }
        const char *inner = s + i + 2;
        const char *close = memchr(inner, '}', len - i - 2);
        if (!close) {
            error_at(L, line, "%s: unterminated '${' reference", opt);
            return false;
        }
        size_t n = (size_t)(close - inner);
        *used = true;
        if (n >= 5 && memcmp(inner, "file:", 5) == 0) {
            ok = expand_file(L, line, opt, inner + 5, n - 5, out) && ok;
        } else {
            const char *dflt = NULL;
            size_t name_len = n;
            for (size_t k = 0; k + 1 < n; k++) {
                if (inner[k] == ':' && inner[k + 1] == '-') {
                    dflt = inner + k + 2;
                    name_len = k;
                    break;
                }
            }
            if (!valid_env_name(inner, name_len)) {
                sl_buf_t q = SL_BUF_INIT;
                sl_config__quote(&q, s + i, n + 3);
                error_at(L, line,
                         "%s: invalid reference %s (expected ${NAME}, ${NAME:-default} or "
                         "${file:/path})",
                         opt, q.data);
                sl_buf_free(&q);
                ok = false;
            } else {
                char *name = sl_strndup(inner, name_len);
                const char *v = getenv(name);
                if (dflt && (!v || !*v)) {
                    sl_buf_append(out, dflt, (size_t)(close - dflt));
                } else if (!v) {
                    error_at(L, line, "%s: environment variable '%s' is not set", opt, name);
                    ok = false;
                } else {
                    sl_buf_puts(out, v);
                }
                free(name);
            }
        }
        i += n + 3;
        if (out->len > SL_CONFIG_MAX_SCALAR_BYTES) {
            error_at(L, line, "%s: value longer than %u bytes after expanding references", opt,
                     SL_CONFIG_MAX_SCALAR_BYTES);
            return false;
        }
    }
    return ok;
}

/* Walking the document */

static void set_option(loader_t *L, const sl_config_option_t *opt, size_t line) {
    if (L->ev.type != YAML_SCALAR_EVENT) {
        if (L->ev.type != YAML_ALIAS_EVENT) {
            error_at(L, line, "%s: expected a scalar (%s), got %s", opt->name,
                     sl_config_type_name(opt->type), node_kind(&L->ev));
        }
        return;
    }
    if (L->bad_scalar) return;
    const char *raw = (const char *)L->ev.data.scalar.value;
    size_t raw_len = L->ev.data.scalar.length;
    if (is_null(&L->ev) && opt->type != SL_CONFIG_STRING) {
        error_at(L, line, "%s: missing value", opt->name);
        return;
    }
    if (is_null(&L->ev)) raw_len = 0;
    sl_buf_t val = SL_BUF_INIT, shown = SL_BUF_INIT, msg = SL_BUF_INIT;
    bool used;
    sl_buf_reserve(&val, raw_len);
    if (expand(L, line, opt->name, raw, raw_len, &val, &used)) {
        if (used) {
            sl_buf_puts(&shown, "the value of ");
            sl_config__quote(&shown, raw, raw_len);
        }
        if (sl_config__set(opt, L->cfg, val.data, val.len, used ? shown.data : NULL, &msg)) {
            error_at(L, line, "%s", msg.data);
        }
    }
    sl_buf_free(&val);
    sl_buf_free(&shown);
    sl_buf_free(&msg);
}

static size_t section_seen(loader_t *L, const char *name, size_t line) {
    for (size_t i = 0; i < L->n_sections; i++) {
        if (strcmp(L->sections[i].name, name) == 0) return L->sections[i].line;
    }
    L->sections = sl_realloc(L->sections, (L->n_sections + 1) * sizeof *L->sections);
    L->sections[L->n_sections++] = (seen_t){sl_strdup(name), line};
    return 0;
}

static void walk_mapping(loader_t *L, const char *prefix);

/* The current event is the value of key full (set on line); dotted: the key had a '.'. */
static void walk_value(loader_t *L, const char *full, size_t line, bool top, bool dotted) {
    size_t n_opts;
    const sl_config_option_t *opts = sl_config_options(&n_opts);
    const sl_config_option_t *opt = dotted ? NULL : sl_config_option_find(full);
    if (opt) {
        size_t idx = (size_t)(opt - opts);
        if (L->opt_line[idx]) {
            error_at(L, line, "duplicate key '%s' (first set on line %zu)", full, L->opt_line[idx]);
        } else {
            L->opt_line[idx] = line;
        }
        set_option(L, opt, line);
        skip_node(L);
        return;
    }
    if (!dotted && is_owned(full)) {
        size_t first = section_seen(L, full, line);
        if (first) error_at(L, line, "duplicate key '%s' (first set on line %zu)", full, first);
        skip_node(L);
        return;
    }
    if (!dotted && is_section(full)) {
        size_t first = section_seen(L, full, line);
        if (first) error_at(L, line, "duplicate key '%s' (first set on line %zu)", full, first);
        if (L->ev.type == YAML_MAPPING_START_EVENT) {
            walk_mapping(L, full);
        } else if (!is_null(&L->ev) && L->ev.type != YAML_ALIAS_EVENT) {
            error_at(L, line, "'%s' is a section: expected a mapping of its options, got %s", full,
                     node_kind(&L->ev));
            skip_node(L);
        }
        return;
    }
    sl_buf_t msg = SL_BUF_INIT;
    sl_config__quote(&msg, full, strlen(full));
    suggest(&msg, full);
    error_at(L, line, "unknown %s %s", top ? "section" : "option", msg.data);
    sl_buf_free(&msg);
    skip_node(L);
}

/* The current event is a MAPPING_START; consumes through its MAPPING_END. */
static void walk_mapping(loader_t *L, const char *prefix) {
    while (next(L)) {
        if (L->ev.type == YAML_MAPPING_END_EVENT) return;
        size_t line = ev_line(L);
        if (L->ev.type != YAML_SCALAR_EVENT || L->bad_scalar) {
            if (L->ev.type != YAML_SCALAR_EVENT && L->ev.type != YAML_ALIAS_EVENT) {
                error_at(L, line, "keys must be scalars, got %s", node_kind(&L->ev));
            }
            if (!skip_node(L) || !next(L) || !skip_node(L)) return;
            continue;
        }
        const char *key = (const char *)L->ev.data.scalar.value;
        size_t key_len = L->ev.data.scalar.length;
        sl_buf_t full = SL_BUF_INIT;
        if (*prefix) sl_buf_printf(&full, "%s.", prefix);
        sl_buf_append(&full, key, key_len);
        /* Dotted keys would give every option a second spelling; nested maps only. */
        bool dotted = memchr(key, '.', key_len) != NULL;
        if (memchr(key, '\0', key_len)) {
            error_at(L, line, "keys must not contain NUL bytes");
            if (next(L)) skip_node(L);
        } else if (next(L)) {
            walk_value(L, full.data, line, !*prefix, dotted); /* key is gone now */
        }
        sl_buf_free(&full);
    }
}

static void check_cross(loader_t *L) {
    const sl_config_t *c = L->cfg;
    if (c->tracing.batch_size > c->tracing.queue_size) {
        size_t n;
        const sl_config_option_t *opts = sl_config_options(&n);
        size_t line = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(opts[i].name, "tracing.batch_size") && L->opt_line[i])
                line = L->opt_line[i];
            if (!strcmp(opts[i].name, "tracing.queue_size") && !line) line = L->opt_line[i];
        }
        error_at(L, line, "tracing.batch_size (%u) must not exceed tracing.queue_size (%u)",
                 c->tracing.batch_size, c->tracing.queue_size);
    }
}

static void walk_stream(loader_t *L) {
    if (!next(L) || L->ev.type != YAML_STREAM_START_EVENT) return;
    if (!next(L) || L->ev.type == YAML_STREAM_END_EVENT) return; /* empty file: defaults */
    if (!next(L)) return;                                        /* the root node */
    if (L->ev.type == YAML_MAPPING_START_EVENT) {
        walk_mapping(L, "");
    } else if (!is_null(&L->ev)) {
        if (L->ev.type != YAML_ALIAS_EVENT) {
            error_at(L, ev_line(L), "the top level must be a mapping of sections, got %s",
                     node_kind(&L->ev));
        }
        skip_node(L);
    }
    if (!next(L)) return; /* DOCUMENT_END */
    if (next(L) && L->ev.type == YAML_DOCUMENT_START_EVENT) {
        error_at(L, ev_line(L), "only one YAML document is allowed");
    }
    if (L->n_errors == 0 && !L->stop) check_cross(L);
}

int sl_config_load_buffer(const char *name, const void *data, size_t len, sl_config_t *cfg,
                          sl_config_errors_t *errs) {
    sl_config_errors_t local = SL_CONFIG_ERRORS_INIT;
    loader_t L = {.name = name, .data = data, .len = len, .cfg = cfg, .errs = errs ? errs : &local};
    memset(cfg, 0, sizeof *cfg);
    if (len > SL_CONFIG_MAX_FILE_BYTES) {
        error_at(&L, 0, "the file is %zu bytes, larger than the limit of %u", len,
                 SL_CONFIG_MAX_FILE_BYTES);
        sl_config_errors_free(&local);
        return SL_ELIMIT;
    }
    size_t n_opts;
    sl_config_options(&n_opts);
    L.opt_line = sl_calloc(n_opts, sizeof *L.opt_line);
    sl_config_defaults(cfg);
    if (!yaml_parser_initialize(&L.parser)) abort(); /* only fails on out of memory */
    yaml_parser_set_input_string(
        &L.parser, len ? (const unsigned char *)data : (const unsigned char *)"", len);
    walk_stream(&L);
    if (L.have_ev) yaml_event_delete(&L.ev);
    yaml_parser_delete(&L.parser);
    for (size_t i = 0; i < L.n_sections; i++)
        free(L.sections[i].name);
    free(L.sections);
    free(L.opt_line);
    sl_config_errors_free(&local);
    if (L.n_errors) {
        sl_config_free(cfg);
        return SL_EPARSE;
    }
    return SL_OK;
}

int sl_config_load_file(const char *path, sl_config_t *cfg, sl_config_errors_t *errs) {
    sl_buf_t content = SL_BUF_INIT;
    memset(cfg, 0, sizeof *cfg);
    int rc = sl_config__read_file(path, SL_CONFIG_MAX_FILE_BYTES, &content, errs);
    if (rc == SL_OK) rc = sl_config_load_buffer(path, content.data, content.len, cfg, errs);
    if (rc == SL_OK) cfg->path = sl_strdup(path);
    sl_buf_free(&content);
    return rc;
}
