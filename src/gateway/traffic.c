/* Traffic policies per model (see traffic.h): the config parser with file:line errors, the
 * immutable reference-counted policy set, the lock-free version pick (sticky hash, weighted
 * draw, shadow draw, override) and the holder that swaps sets on hot reload. */
#include "gateway/traffic.h"
#include "gateway/names.h"

#include "core/log.h"
#include "core/snapshot.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 20

struct sl_traffic_set {
    _Atomic uint32_t refs;
    sl_traffic_policy_t *policies; /* sorted by model name (strcmp) */
    size_t n;
};

/* ---- per-thread PRNG ----------------------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna), seeded per thread from getrandom through splitmix64 so a
 * seed of few distinct bits still fills the whole state. Not cryptographic: a client that could
 * predict the draws would only learn which version it is likely to get. */
static _Thread_local uint64_t rng_s[4];
static _Thread_local bool rng_seeded;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void) {
    if (!rng_seeded) {
        uint64_t seed;
        sl_random_bytes(&seed, sizeof seed);
        for (int i = 0; i < 4; i++)
            rng_s[i] = splitmix64(&seed);
        rng_seeded = true;
    }
    uint64_t *s = rng_s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* floor(r * n / 2^64): maps a uniform 64-bit value to [0, n) without modulo bias worth
 * mentioning (n is at most 2^32), and monotonically in r, which the sticky property needs. */
static inline uint64_t scale(uint64_t r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

/* ---- picking ------------------------------------------------------------------------------- */

/* FNV-1a state after the model name and the 0 separator byte (which keeps ("ab", "c") and
 * ("a", "bc") apart). Kept per policy. */
static uint64_t model_seed(sl_str_t model) {
    return sl_fnv64(sl_fnv64(SL_FNV64_INIT, model.ptr, model.len), "", 1);
}

/* scale() reads the high bits, hence the finaliser. */
static uint64_t key_hash(uint64_t h, sl_str_t key) {
    return sl_mix64(sl_fnv64(h, key.ptr, key.len));
}

uint64_t sl_traffic_sticky_hash(sl_str_t model, sl_str_t key) {
    return key_hash(model_seed(model), key);
}

static const char *version_at(const sl_traffic_policy_t *p, uint64_t point) {
    uint64_t cum = 0;
    for (size_t i = 0; i < p->n_versions; i++) {
        cum += p->versions[i].weight;
        if (point < cum) return p->versions[i].name;
    }
    SL_ASSERT(!"point outside the split"); /* point < total_weight by construction */
    return NULL;
}

void sl_traffic_pick_with(const sl_traffic_policy_t *p, sl_str_t sticky, sl_str_t override,
                          uint64_t r_split, uint64_t r_shadow, sl_traffic_decision_t *out) {
    *out = (sl_traffic_decision_t){0};
    if (override.ptr) {
        for (size_t i = 0; i < p->n_versions && !out->version; i++) {
            if (sl_str_eq(override, p->versions[i].name)) out->version = p->versions[i].name;
        }
        if (!out->version && p->shadow_version && sl_str_eq(override, p->shadow_version))
            out->version = p->shadow_version;
        if (out->version)
            out->reason = SL_TRAFFIC_BY_OVERRIDE;
        else
            out->override_ignored = true;
    }
    if (!out->version && sticky.ptr && sticky.len > 0) {
        out->version = version_at(p, scale(key_hash(p->sticky_seed, sticky), p->total_weight));
        out->reason = SL_TRAFFIC_BY_STICKY;
    }
    if (!out->version) {
        out->version = version_at(p, scale(r_split, p->total_weight));
        out->reason = SL_TRAFFIC_BY_WEIGHT;
    }
    if (p->shadow_version && out->version != p->shadow_version &&
        scale(r_shadow, SL_TRAFFIC_SHADOW_SCALE) < p->shadow_bp) {
        out->shadow = p->shadow_version;
    }
}

void sl_traffic_pick(const sl_traffic_policy_t *p, sl_str_t sticky, sl_str_t override,
                     sl_traffic_decision_t *out) {
    uint64_t r_split = rng_next();
    uint64_t r_shadow = p->shadow_bp ? rng_next() : 0;
    sl_traffic_pick_with(p, sticky, override, r_split, r_shadow, out);
}

/* ---- sets ---------------------------------------------------------------------------------- */

static void policy_free(sl_traffic_policy_t *p) {
    free((char *)p->model);
    for (size_t i = 0; i < p->n_versions; i++)
        free((char *)p->versions[i].name);
    free((sl_traffic_version_t *)p->versions);
    free((char *)p->sticky_name);
    free((char *)p->shadow_version);
    free((char *)p->override_header);
}

static void set_free(sl_traffic_set_t *s) {
    for (size_t i = 0; i < s->n; i++)
        policy_free(&s->policies[i]);
    free(s->policies);
    free(s);
}

sl_traffic_set_t *sl_traffic_set_empty(void) {
    sl_traffic_set_t *s = sl_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    return s;
}

sl_traffic_set_t *sl_traffic_set_ref(const sl_traffic_set_t *cs) {
    sl_traffic_set_t *s = (sl_traffic_set_t *)cs; /* the count is not part of the value */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void sl_traffic_set_unref(const sl_traffic_set_t *cs) {
    sl_traffic_set_t *s = (sl_traffic_set_t *)cs;
    if (!s) return;
    uint32_t before = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
    SL_ASSERT(before > 0);
    if (before == 1) set_free(s);
}

static int cmp_str_model(sl_str_t model, const char *name) {
    size_t n = strlen(name);
    int c = memcmp(model.ptr, name, SL_MIN(model.len, n));
    if (c) return c;
    return model.len < n ? -1 : model.len > n ? 1 : 0;
}

const sl_traffic_policy_t *sl_traffic_set_find(const sl_traffic_set_t *s, sl_str_t model) {
    if (!model.ptr) return NULL;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_str_model(model, s->policies[mid].model);
        if (c == 0) return &s->policies[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t sl_traffic_set_count(const sl_traffic_set_t *s) {
    return s->n;
}

const sl_traffic_policy_t *sl_traffic_set_at(const sl_traffic_set_t *s, size_t i) {
    SL_ASSERT(i < s->n);
    return &s->policies[i];
}

/* ---- parser -------------------------------------------------------------------------------- */

typedef struct {
    sl_yaml_errors_t ye;
} pc_t;

static void perr(pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_yaml_verror(&c->ye, at, SL_EINVAL, fmt, ap);
    va_end(ap);
}

static bool is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* An HTTP header name (an RFC 9110 token, restricted to the characters headers use in practice)
 * or a JSON field name: [A-Za-z0-9_.-]. */
static bool key_name_ok(const char *s, size_t n, bool header) {
    if (n == 0 || n > SL_TRAFFIC_KEY_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (is_alnum(ch) || ch == '-' || (!header && (ch == '_' || ch == '.'))) continue;
        if (header && ch == '_') continue;
        return false;
    }
    return true;
}

static char *lower_dup(const char *s) {
    char *d = sl_strdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return d;
}

/* A share in percent with at most two decimals ("10", "0.5", "12.25"), as basis points. */
static bool parse_percent(const sl_yaml_node_t *n, uint32_t *bp) {
    if (n->kind != SL_YAML_SCALAR || n->len == 0) return false;
    const char *s = n->value;
    uint64_t whole = 0, frac = 0;
    size_t i = 0, digits = 0;
    for (; s[i] >= '0' && s[i] <= '9' && digits < 4; i++, digits++)
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    if (digits == 0) return false;
    if (s[i] == '.') {
        size_t fd = 0;
        for (i++; s[i] >= '0' && s[i] <= '9' && fd < 3; i++, fd++)
            frac = frac * 10 + (uint64_t)(s[i] - '0');
        if (fd == 0 || fd > 2) return false;
        if (fd == 1) frac *= 10;
    }
    if (s[i] != '\0') return false;
    uint64_t v = whole * 100 + frac;
    if (v > SL_TRAFFIC_SHADOW_SCALE) return false;
    *bp = (uint32_t)v;
    return true;
}

static void parse_split(pc_t *c, const sl_yaml_node_t *m, const char *model,
                        sl_traffic_policy_t *p) {
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "split")) return;
    if (m->n == 0) {
        perr(c, m, "split of model '%s' names no version", model);
        return;
    }
    if (m->n > SL_TRAFFIC_MAX_VERSIONS) {
        perr(c, m, "split of model '%s' has %zu versions (at most %d)", model, m->n,
             SL_TRAFFIC_MAX_VERSIONS);
        return;
    }
    sl_traffic_version_t *v = sl_calloc(m->n, sizeof *v);
    p->versions = v;
    uint64_t total = 0;
    for (size_t i = 0; i < m->n; i++) {
        const sl_yaml_node_t *k = m->keys[i];
        if (!sl_gw_version_ok(k->value, k->len, SL_TRAFFIC_VERSION_MAX)) {
            perr(c, k,
                 "version '%.64s' of model '%s' is not a version name (letters, digits, '.', "
                 "'+', '-'; at most %d bytes)",
                 k->value, model, SL_TRAFFIC_VERSION_MAX);
            continue;
        }
        int64_t w;
        int rc = sl_yaml_get_int64(m->items[i], 0, SL_TRAFFIC_MAX_WEIGHT, &w);
        if (rc != 0) {
            perr(c, m->items[i], "weight of version '%s' must be an integer from 0 to %d", k->value,
                 SL_TRAFFIC_MAX_WEIGHT);
            continue;
        }
        v[p->n_versions].name = sl_strdup(k->value);
        v[p->n_versions].weight = (uint32_t)w;
        p->n_versions++;
        total += (uint64_t)w;
    }
    if (p->n_versions == m->n && total == 0)
        perr(c, m, "split of model '%s' has no positive weight", model);
    p->total_weight = total;
}

static void parse_sticky(pc_t *c, const sl_yaml_node_t *n, sl_traffic_policy_t *p) {
    const sl_yaml_node_t *name = n;
    p->sticky_source = SL_TRAFFIC_STICKY_FIELD;
    if (n->kind == SL_YAML_MAP) {
        static const char *const keys[] = {"field", "header", NULL};
        sl_yaml_check_keys(&c->ye, n, keys, "sticky");
        if (n->n != 1) {
            perr(c, n, "sticky needs exactly one of 'field' or 'header'");
            p->sticky_source = SL_TRAFFIC_STICKY_NONE;
            return;
        }
        name = n->items[0];
        if (strcmp(n->keys[0]->value, "header") == 0) p->sticky_source = SL_TRAFFIC_STICKY_HEADER;
    } else if (sl_yaml_is_null(n)) {
        p->sticky_source = SL_TRAFFIC_STICKY_NONE;
        return;
    }
    bool header = p->sticky_source == SL_TRAFFIC_STICKY_HEADER;
    if (!sl_yaml_want(&c->ye, name, SL_YAML_SCALAR, "sticky") ||
        !key_name_ok(name->value, name->len, header)) {
        if (name->kind == SL_YAML_SCALAR)
            perr(c, name, "sticky %s '%.64s' is not a valid %s name (%s; at most %d bytes)",
                 header ? "header" : "field", name->value, header ? "header" : "field",
                 header ? "letters, digits, '-', '_'" : "letters, digits, '_', '.', '-'",
                 SL_TRAFFIC_KEY_NAME_MAX);
        p->sticky_source = SL_TRAFFIC_STICKY_NONE;
        return;
    }
    p->sticky_name = header ? lower_dup(name->value) : sl_strdup(name->value);
}

static void parse_shadow(pc_t *c, const sl_yaml_node_t *n, const char *model,
                         sl_traffic_policy_t *p) {
    if (sl_yaml_is_null(n)) return;
    if (!sl_yaml_want(&c->ye, n, SL_YAML_MAP, "shadow")) return;
    static const char *const keys[] = {"version", "percent", NULL};
    sl_yaml_check_keys(&c->ye, n, keys, "shadow");
    const sl_yaml_node_t *ver = sl_yaml_map_get(n, "version");
    const sl_yaml_node_t *pct = sl_yaml_map_get(n, "percent");
    if (!ver || !pct) {
        perr(c, n, "shadow of model '%s' needs both 'version' and 'percent'", model);
        return;
    }
    uint32_t bp = 0;
    if (!parse_percent(pct, &bp)) {
        perr(c, pct, "shadow.percent must be a number from 0 to 100 with at most two decimals");
        return;
    }
    if (!sl_yaml_want(&c->ye, ver, SL_YAML_SCALAR, "shadow.version")) return;
    if (!sl_gw_version_ok(ver->value, ver->len, SL_TRAFFIC_VERSION_MAX)) {
        perr(c, ver, "shadow version '%.64s' is not a version name", ver->value);
        return;
    }
    for (size_t i = 0; i < p->n_versions; i++) {
        if (strcmp(p->versions[i].name, ver->value) == 0) {
            perr(c, ver,
                 "shadow version '%s' of model '%s' is also in the split; a shadow version "
                 "must serve no client traffic",
                 ver->value, model);
            return;
        }
    }
    p->shadow_version = sl_strdup(ver->value);
    p->shadow_bp = bp;
}

static void parse_policy(pc_t *c, const sl_yaml_node_t *key, const sl_yaml_node_t *m,
                         sl_traffic_policy_t *p) {
    p->model = sl_strdup(key->value);
    p->line = key->line;
    p->sticky_seed = model_seed((sl_str_t){key->value, key->len});
    if (!sl_gw_name_ok(key->value, key->len, SL_TRAFFIC_MODEL_MAX, true)) {
        perr(c, key,
             "'%.64s' is not a model name (letters, digits, '_', '.', '-', not starting with "
             "'.'; at most %d bytes)",
             key->value, SL_TRAFFIC_MODEL_MAX);
        return;
    }
    if (!sl_yaml_want(&c->ye, m, SL_YAML_MAP, "a traffic policy")) return;
    static const char *const keys[] = {"split", "sticky", "shadow", "override_header", NULL};
    char where[SL_TRAFFIC_MODEL_MAX + 32];
    snprintf(where, sizeof where, "the policy of model '%s'", p->model);
    sl_yaml_check_keys(&c->ye, m, keys, where);
    const sl_yaml_node_t *v;
    if (!(v = sl_yaml_map_get(m, "split"))) {
        perr(c, m, "the policy of model '%s' needs a split (e.g. split: {\"1.0.0\": 100})",
             p->model);
        return;
    }
    parse_split(c, v, p->model, p);
    if ((v = sl_yaml_map_get(m, "sticky"))) parse_sticky(c, v, p);
    if ((v = sl_yaml_map_get(m, "shadow"))) parse_shadow(c, v, p->model, p);
    if ((v = sl_yaml_map_get(m, "override_header")) && !sl_yaml_is_null(v)) {
        if (sl_yaml_want(&c->ye, v, SL_YAML_SCALAR, "override_header")) {
            if (key_name_ok(v->value, v->len, true))
                p->override_header = lower_dup(v->value);
            else
                perr(c, v, "override_header '%.64s' is not a header name", v->value);
        }
    }
}

static int cmp_policy(const void *a, const void *b) {
    return strcmp(((const sl_traffic_policy_t *)a)->model, ((const sl_traffic_policy_t *)b)->model);
}

int sl_traffic_set_parse(const char *file, const sl_yaml_node_t *traffic, sl_traffic_set_t **out,
                         sl_buf_t *err) {
    *out = NULL;
    pc_t c = {.ye = {.file = file ? file : "config", .out = err, .max = MAX_ERRORS}};
    sl_traffic_set_t *s = sl_traffic_set_empty();
    if (traffic && !sl_yaml_is_null(traffic) &&
        sl_yaml_want(&c.ye, traffic, SL_YAML_MAP, "traffic")) {
        if (traffic->n > SL_TRAFFIC_MAX_POLICIES) {
            perr(&c, traffic, "traffic has %zu policies (at most %d)", traffic->n,
                 SL_TRAFFIC_MAX_POLICIES);
        } else if (traffic->n > 0) {
            s->policies = sl_calloc(traffic->n, sizeof *s->policies);
            for (size_t i = 0; i < traffic->n; i++, s->n++)
                parse_policy(&c, traffic->keys[i], traffic->items[i], &s->policies[i]);
            /* Keys of a YAML mapping are unique, so no two policies share a model. */
            qsort(s->policies, s->n, sizeof *s->policies, cmp_policy);
        }
    }
    if (c.ye.n > 0) {
        set_free(s);
        return SL_EINVAL;
    }
    *out = s;
    return 0;
}

int sl_traffic_set_parse_text(const char *file, const void *data, size_t len,
                              sl_traffic_set_t **out, sl_buf_t *err) {
    *out = NULL;
    sl_yaml_limits_t lim = {.max_bytes = SL_TRAFFIC_CONFIG_MAX};
    sl_yaml_doc_t *doc = NULL;
    int rc = sl_yaml_doc_parse(file ? file : "config", data, len, &lim, &doc, err);
    if (rc != 0) return rc;
    const sl_yaml_node_t *traffic = NULL;
    if (doc->root && doc->root->kind == SL_YAML_MAP) {
        traffic = sl_yaml_map_get(doc->root, "traffic");
    } else if (doc->root && !sl_yaml_is_null(doc->root)) {
        sl_buf_printf(err, "%s:%" PRIu32 ": the document must be a mapping, not %s\n",
                      file ? file : "config", doc->root->line, sl_yaml_kind_name(doc->root->kind));
        sl_yaml_doc_free(doc);
        return SL_EINVAL;
    }
    rc = sl_traffic_set_parse(file, traffic, out, err);
    sl_yaml_doc_free(doc);
    return rc;
}

/* ---- holder -------------------------------------------------------------------------------- */

/* The holder is a core snapshot of sets that never holds NULL (NULL publishes an empty set);
 * these adapt the typed refcount to its callbacks. */
static void set_ref_cb(void *s) {
    sl_traffic_set_ref(s);
}
static void set_unref_cb(void *s) {
    sl_traffic_set_unref(s);
}

struct sl_traffic_holder {
    sl_snapshot_t *snap;
};

sl_traffic_holder_t *sl_traffic_holder_new(sl_traffic_set_t *initial) {
    sl_traffic_holder_t *h = sl_calloc(1, sizeof *h);
    h->snap = sl_snapshot_new(set_ref_cb, set_unref_cb, initial ? initial : sl_traffic_set_empty());
    return h;
}

void sl_traffic_holder_free(sl_traffic_holder_t *h) {
    if (!h) return;
    sl_snapshot_free(h->snap);
    free(h);
}

void sl_traffic_holder_publish(sl_traffic_holder_t *h, sl_traffic_set_t *s) {
    if (!s) s = sl_traffic_set_empty();
    size_t n = s->n; /* read before publishing: the holder may drop s once it is replaced */
    sl_snapshot_publish(h->snap, s);
    SL_INFO("gateway", "traffic policies published", SL_LF_U("policies", n));
}

sl_traffic_set_t *sl_traffic_holder_acquire(sl_traffic_holder_t *h) {
    return sl_snapshot_acquire(h->snap);
}

const sl_traffic_set_t *sl_traffic_view_get(sl_traffic_holder_t *h, sl_traffic_view_t *v) {
    return sl_snapshot_view_get(h->snap, &v->snap);
}

void sl_traffic_view_release(sl_traffic_view_t *v) {
    sl_snapshot_view_release(&v->snap);
}
