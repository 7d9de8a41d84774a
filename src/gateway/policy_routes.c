/* The `routes:` and `pipelines:` sections of the gateway policy: per model (the /v2 OIP routes)
 * and per pipeline (POST /v1/predict/{name}), the upstream pool, deadline, fallback and fault
 * injection. Pipelines' own keys are parsed by pipeline.h from the same mapping; this file
 * parses `upstream`, `fallback` and `fault` there, and turns a pipeline's `fallback.default`
 * into ready-to-send JSON checked against the pipeline's output fields. */
#include "gateway/policy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_H     3600000ull
#define DAY_MS   (24ull * MS_H)
#define WHAT_MAX 200

/* Appends "a, b, c" (the pools' names) for "unknown upstream" messages. */
static void list_upstreams(const sl_gw_policy_t *p, sl_buf_t *out) {
    for (size_t i = 0; i < p->n_upstreams; i++)
        sl_buf_printf(out, "%s%s", i ? ", " : "", p->upstreams[i].name);
}

static const sl_gw_upstream_t *find_upstream(const sl_gw_policy_t *p, const char *name) {
    for (size_t i = 0; i < p->n_upstreams; i++)
        if (strcmp(p->upstreams[i].name, name) == 0) return &p->upstreams[i];
    return NULL;
}

/* The pool named by n (an `upstream:` value), or NULL after reporting why. */
static const sl_gw_upstream_t *resolve_upstream(sl_gw__pc_t *c, const sl_yaml_node_t *n,
                                                const char *what, const sl_gw_policy_t *p) {
    if (n->kind != SL_YAML_SCALAR || sl_yaml_is_null(n)) {
        sl_gw__err(c, n, "%s.upstream must name an upstream pool", what);
        return NULL;
    }
    const sl_gw_upstream_t *u = find_upstream(p, n->value);
    if (u) return u;
    sl_buf_t known = SL_BUF_INIT;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < p->n_upstreams; i++) {
        size_t d = sl_str_edit_distance(p->upstreams[i].name, n->value);
        if (d < best_d) {
            best_d = d;
            best = p->upstreams[i].name;
        }
    }
    list_upstreams(p, &known);
    if (best && best_d <= 3)
        sl_gw__err(c, n, "%s names unknown upstream '%.64s' (did you mean '%s'?)", what, n->value,
                   best);
    else
        sl_gw__err(c, n, "%s names unknown upstream '%.64s' (upstreams: %s)", what, n->value,
                   known.len ? known.data : "none");
    sl_buf_free(&known);
    return NULL;
}

/* ---- fault ---------------------------------------------------------------------------------- */

/* One fault kind, {percent: P, <second>: V}: checks the keys and parses the share into *bp.
 * Returns the <second> node for the caller to parse, or NULL when the block is unusable (every
 * problem reported, with `what.fault.<kind>` in the messages). */
static const sl_yaml_node_t *fault_kind(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what,
                                        const char *kind, const char *second, uint32_t *bp) {
    char w[WHAT_MAX + 48];
    snprintf(w, sizeof w, "%s.fault.%s", what, kind);
    if (!sl_gw__want_map(c, n, w)) return NULL;
    const char *const keys[] = {"percent", second, NULL};
    sl_yaml_check_keys(&c->ye, n, keys, w);
    const sl_yaml_node_t *pct = sl_yaml_map_get(n, "percent");
    const sl_yaml_node_t *val = sl_yaml_map_get(n, second);
    if (!pct || !val) sl_gw__err(c, n, "%s needs percent and %s", w, second);
    snprintf(w, sizeof w, "%s.fault.%s.percent", what, kind);
    bool ok = pct && sl_gw__percent_bp(c, pct, w, bp);
    return ok ? val : NULL;
}

static void parse_fault(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what,
                        sl_gw_fault_t *f) {
    char w[WHAT_MAX + 48];
    snprintf(w, sizeof w, "%s.fault", what);
    if (!sl_gw__want_map(c, n, w)) return;
    static const char *const keys[] = {"delay", "abort", NULL};
    sl_yaml_check_keys(&c->ye, n, keys, w);
    const sl_yaml_node_t *d = sl_yaml_map_get(n, "delay");
    const sl_yaml_node_t *a = sl_yaml_map_get(n, "abort");
    uint32_t bp = 0;
    const sl_yaml_node_t *v;
    if (d && (v = fault_kind(c, d, what, "delay", "duration", &bp))) {
        uint64_t ms;
        snprintf(w, sizeof w, "%s.fault.delay.duration", what);
        if (sl_gw__duration(c, v, w, 1, MS_H, &ms)) {
            f->delay_bp = bp;
            f->delay_ms = ms;
        }
    }
    if (a && (v = fault_kind(c, a, what, "abort", "status", &bp))) {
        uint64_t status;
        snprintf(w, sizeof w, "%s.fault.abort.status", what);
        if (sl_gw__uint(c, v, w, 400, 599, &status)) {
            f->abort_bp = bp;
            f->abort_status = (uint32_t)status;
        }
    }
}

/* ---- fallback ------------------------------------------------------------------------------- */

static bool is_json_number(const char *s) {
    size_t i = 0;
    if (s[i] == '-') i++;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return false;
    }
    if (s[i] == '.') {
        i++;
        if (s[i] < '0' || s[i] > '9') return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-') i++;
        if (s[i] < '0' || s[i] > '9') return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == '\0';
}

/* Appends scalar n as a JSON value: quoted -> string; plain null/bool/number as such; other
 * plain text -> string, except text that looks numeric but is not JSON (0x1F, .5, +1, 007,
 * .inf), which is refused rather than silently sent as a string. */
static bool json_scalar(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, sl_buf_t *out) {
    if (n->kind != SL_YAML_SCALAR) {
        sl_gw__err(c, n, "%s must be a JSON scalar or a list of them, not %s", what,
                   sl_yaml_kind_name(n->kind));
        return false;
    }
    bool b;
    if (!n->plain) {
        sl_buf_putc(out, '"');
        sl_buf_json_escape(out, n->value, n->len);
        sl_buf_putc(out, '"');
    } else if (sl_yaml_is_null(n)) {
        sl_buf_puts(out, "null");
    } else if (sl_yaml_get_bool(n, &b) == 0) {
        sl_buf_puts(out, b ? "true" : "false");
    } else if (is_json_number(n->value)) {
        sl_buf_append(out, n->value, n->len);
    } else if (strchr("0123456789+-.", n->value[0])) {
        sl_gw__err(c, n, "%s: '%.64s' is not a JSON number (quote it for a string)", what,
                   n->value);
        return false;
    } else {
        sl_buf_putc(out, '"');
        sl_buf_json_escape(out, n->value, n->len);
        sl_buf_putc(out, '"');
    }
    return true;
}

static void parse_default(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what,
                          const sl_pipeline_t *pl, sl_gw_fallback_t *fb) {
    char w[WHAT_MAX + 64];
    snprintf(w, sizeof w, "%s.fallback.default", what);
    if (!sl_gw__want(c, n, SL_YAML_MAP, w)) return;
    if (n->n == 0 || n->n > SL_GW_DEFAULT_FIELDS) {
        sl_gw__err(c, n, "%s must give 1..%d output fields", w, SL_GW_DEFAULT_FIELDS);
        return;
    }
    int before = c->ye.n;
    sl_buf_t j = SL_BUF_INIT;
    sl_buf_putc(&j, '{');
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *k = n->keys[i], *v = n->items[i];
        if (pl && !sl_pipeline_has_output_field(pl, k->value)) {
            sl_buf_t fields = SL_BUF_INIT;
            for (size_t f = 0; f < sl_pipeline_output_count(pl); f++)
                sl_buf_printf(&fields, "%s%s", f ? ", " : "", sl_pipeline_output_field(pl, f));
            sl_gw__err(c, k, "%s: '%.64s' is not an output field of the pipeline (outputs: %.200s)",
                       w, k->value, fields.data ? fields.data : "none");
            sl_buf_free(&fields);
            continue;
        }
        if (i) sl_buf_putc(&j, ',');
        sl_buf_putc(&j, '"');
        sl_buf_json_escape(&j, k->value, k->len);
        sl_buf_puts(&j, "\":");
        snprintf(w, sizeof w, "%s.fallback.default.%.64s", what, k->value);
        if (v->kind == SL_YAML_SEQ) {
            sl_buf_putc(&j, '[');
            for (size_t e = 0; e < v->n; e++) {
                if (e) sl_buf_putc(&j, ',');
                if (!json_scalar(c, v->items[e], w, &j)) break;
            }
            sl_buf_putc(&j, ']');
        } else {
            json_scalar(c, v, w, &j);
        }
        snprintf(w, sizeof w, "%s.fallback.default", what);
        if (j.len > SL_GW_DEFAULT_JSON_MAX) {
            sl_gw__err(c, n, "%s is larger than %u bytes as JSON", w, SL_GW_DEFAULT_JSON_MAX);
            break;
        }
    }
    sl_buf_putc(&j, '}');
    if (c->ye.n == before && pl) {
        fb->default_len = j.len;
        fb->default_json = sl_strndup(j.data, j.len);
    }
    sl_buf_free(&j);
}

/* pl is NULL for a /v2 route (no default allowed) or a pipeline that failed to parse. */
static void parse_fallback(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, bool pipeline,
                           const sl_pipeline_t *pl, sl_gw_fallback_t *fb) {
    char w[WHAT_MAX + 32];
    snprintf(w, sizeof w, "%s.fallback", what);
    if (!sl_gw__want_map(c, n, w)) return;
    static const char *const keys[] = {"last_good", "default", NULL};
    sl_yaml_check_keys(&c->ye, n, keys, w);
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(n, "last_good"))) {
        snprintf(w, sizeof w, "%s.fallback.last_good", what);
        sl_gw__bool(c, v, w, &fb->last_good);
    }
    if ((v = sl_yaml_map_get(n, "default")) && !sl_yaml_is_null(v)) {
        if (!pipeline)
            sl_gw__err(c, v,
                       "%s.fallback.default: default answers are for pipelines only (the OIP "
                       "/v2 API has no way to express one); use last_good here",
                       what);
        else
            parse_default(c, v, what, pl, fb);
    }
}

/* ---- routes --------------------------------------------------------------------------------- */

static int cmp_route(const void *a, const void *b) {
    return strcmp(((const sl_gw_route_t *)a)->model, ((const sl_gw_route_t *)b)->model);
}

/* The pool a route without `upstream:` uses: "*"'s, else the only one. */
static const sl_gw_upstream_t *default_upstream(const sl_gw_policy_t *p,
                                                const sl_gw_upstream_t *star) {
    if (star) return star;
    return p->n_upstreams == 1 ? &p->upstreams[0] : NULL;
}

static void parse_route(sl_gw__pc_t *c, const sl_yaml_node_t *key, const sl_yaml_node_t *m,
                        const sl_gw_upstream_t *star_up, sl_gw_policy_t *p, sl_gw_route_t *r) {
    char what[WHAT_MAX];
    snprintf(what, sizeof what, "routes.%.128s", key->value);
    r->model = sl_strdup(key->value);
    r->line = key->line;
    bool star = strcmp(key->value, "*") == 0;
    if (!star && !sl_gw__model_ok(key->value, key->len))
        sl_gw__err(c, key,
                   "'%.64s' is not a model name (letters, digits, '_', '.', '-', not starting "
                   "with '.'; at most %d bytes) or \"*\"",
                   key->value, SL_GW_MODEL_MAX);
    const sl_yaml_node_t *v;
    if (!sl_yaml_is_null(m) && sl_gw__want(c, m, SL_YAML_MAP, what)) {
        static const char *const keys[] = {"upstream", "timeout", "fallback", "fault", NULL};
        sl_yaml_check_keys(&c->ye, m, keys, what);
        if ((v = sl_yaml_map_get(m, "upstream"))) r->upstream = resolve_upstream(c, v, what, p);
        uint64_t ms;
        char w[WHAT_MAX + 16];
        snprintf(w, sizeof w, "%s.timeout", what);
        if ((v = sl_yaml_map_get(m, "timeout")) && sl_gw__duration(c, v, w, 1, DAY_MS, &ms))
            r->timeout_ms = (uint32_t)ms;
        if ((v = sl_yaml_map_get(m, "fallback")))
            parse_fallback(c, v, what, false, NULL, &r->fallback);
        if ((v = sl_yaml_map_get(m, "fault"))) parse_fault(c, v, what, &r->fault);
        if (sl_yaml_map_get(m, "upstream")) return; /* resolved or reported */
    }
    r->upstream = default_upstream(p, star ? NULL : star_up);
    if (!r->upstream)
        sl_gw__err(c, key, "%s needs upstream: there are %zu upstream pools and no \"*\" route",
                   what, p->n_upstreams);
}

void sl_gw__parse_routes(sl_gw__pc_t *c, const sl_yaml_node_t *n, const sl_yaml_node_t *gateway,
                         sl_gw_policy_t *p) {
    if (n && !sl_yaml_is_null(n) && sl_gw__want(c, n, SL_YAML_MAP, "routes")) {
        if (n->n > SL_GW_MAX_ROUTES) {
            sl_gw__err(c, n, "routes has %zu entries (at most %d)", n->n, SL_GW_MAX_ROUTES);
        } else if (n->n > 0) {
            p->routes = sl_calloc(n->n, sizeof *p->routes);
            /* "*" first: the others without upstream inherit its pool. */
            const sl_gw_upstream_t *star_up = NULL;
            const sl_yaml_node_t *sm = sl_yaml_map_get(n, "*");
            for (size_t i = 0; sm && i < n->n; i++) {
                if (strcmp(n->keys[i]->value, "*") != 0) continue;
                parse_route(c, n->keys[i], sm, NULL, p, &p->routes[p->n_routes]);
                star_up = p->routes[p->n_routes++].upstream;
            }
            for (size_t i = 0; i < n->n; i++) {
                if (strcmp(n->keys[i]->value, "*") == 0) continue;
                parse_route(c, n->keys[i], n->items[i], star_up, p, &p->routes[p->n_routes++]);
            }
            qsort(p->routes, p->n_routes, sizeof *p->routes, cmp_route);
            for (size_t i = 0; i < p->n_routes; i++)
                if (strcmp(p->routes[i].model, "*") == 0) p->star = &p->routes[i];
        }
    }
    /* Models with no entry and no "*" go to the only pool with every default. With several
     * pools that would be a guess, so a "*" route is required then. */
    if (!p->star && p->n_upstreams == 1) {
        p->implicit = (sl_gw_route_t){.upstream = &p->upstreams[0]};
        p->has_implicit = true;
    } else if (!p->star && p->n_upstreams > 1) {
        /* Point at the routes map, else at the `upstreams` key that made several pools. */
        const sl_yaml_node_t *at = n && !sl_yaml_is_null(n) ? n : gateway;
        for (size_t i = 0; at == gateway && gateway && i < gateway->n; i++)
            if (strcmp(gateway->keys[i]->value, "upstreams") == 0) at = gateway->keys[i];
        sl_gw__err(c, at,
                   "routes needs a \"*\" entry naming the upstream for other models: there are "
                   "%zu upstream pools",
                   p->n_upstreams);
    }
}

void sl_gw__route_free(sl_gw_route_t *r) {
    free((char *)r->model);
    free((char *)r->fallback.default_json);
}

/* ---- pipelines ------------------------------------------------------------------------------ */

static int cmp_pipeline(const void *a, const void *b) {
    return strcmp(((const sl_gw_pipeline_route_t *)a)->name,
                  ((const sl_gw_pipeline_route_t *)b)->name);
}

static void parse_pipeline(sl_gw__pc_t *c, const sl_yaml_node_t *key, const sl_yaml_node_t *m,
                           sl_gw_policy_t *p, sl_gw_pipeline_route_t *pr) {
    char what[WHAT_MAX];
    snprintf(what, sizeof what, "pipelines.%.128s", key->value);
    pr->name = sl_strdup(key->value);
    pr->route.model = NULL;
    pr->route.line = key->line;
    sl_pipeline_t *pl = NULL;
    if (sl_pipeline_parse(&c->ye, key->value, m, &pl) != 0) pl = NULL;
    pr->pipeline = pl;
    if (m->kind != SL_YAML_MAP) return; /* reported by the pipeline parser */
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "upstream"))) pr->route.upstream = resolve_upstream(c, v, what, p);
    if ((v = sl_yaml_map_get(m, "fallback")))
        parse_fallback(c, v, what, true, pl, &pr->route.fallback);
    if ((v = sl_yaml_map_get(m, "fault"))) parse_fault(c, v, what, &pr->route.fault);
    if (!pl) return;
    /* The rest comes from the route of the pipeline's model: exact, "*", or the only pool. */
    const char *model = sl_pipeline_model(pl);
    const sl_gw_route_t *mr = sl_gw_policy_route(p, (sl_str_t){model, strlen(model)});
    if (mr) pr->route.timeout_ms = mr->timeout_ms;
    if (!sl_yaml_map_get(m, "upstream")) {
        if (mr)
            pr->route.upstream = mr->upstream;
        else
            sl_gw__err(c, key, "%s has no upstream: there is no upstream pool", what);
    }
}

void sl_gw__parse_pipelines(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_gw_policy_t *p) {
    if (!n || sl_yaml_is_null(n) || !sl_gw__want(c, n, SL_YAML_MAP, "pipelines")) return;
    if (n->n > SL_GW_MAX_PIPELINES) {
        sl_gw__err(c, n, "pipelines has %zu entries (at most %d)", n->n, SL_GW_MAX_PIPELINES);
        return;
    }
    if (n->n == 0) return;
    p->pipelines = sl_calloc(n->n, sizeof *p->pipelines);
    for (size_t i = 0; i < n->n; i++)
        parse_pipeline(c, n->keys[i], n->items[i], p, &p->pipelines[p->n_pipelines++]);
    qsort(p->pipelines, p->n_pipelines, sizeof *p->pipelines, cmp_pipeline);
}
