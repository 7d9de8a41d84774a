/* The `limits:` section of the gateway policy: the limiter mode (local or Redis), the Redis
 * connection, token buckets per route class, daily quotas per tier, peak hours and the local
 * day, filled into ratelimit.h's sl_rl_config_t / sl_rl_redis_opts_t. Each class is checked by
 * building a throwaway local limiter with it (ratelimit.h has no separate validate function), so
 * the module's own rules and messages apply, attached to the class's line. */
#include "gateway/policy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_S   1000ull
#define DAY_MS (86400ull * MS_S)
#define WHAT   96

#define REDIS_PREFIX_MAX  64
#define REDIS_SECRET_MAX  4096
#define REDIS_TIMEOUT_MAX 60000

static const char *const class_names[] = {SL_GW_CLASS_PREDICT, SL_GW_CLASS_METADATA,
                                          SL_GW_CLASS_ADMIN, NULL};

/* "HH:MM" at s[0..5) -> seconds of the day; false when malformed. */
static bool hhmm(const char *s, uint32_t max_hour, uint32_t *out) {
    for (int i = 0; i < 5; i++) {
        if (i == 2 ? s[i] != ':' : (s[i] < '0' || s[i] > '9')) return false;
    }
    uint32_t h = (uint32_t)(s[0] - '0') * 10 + (uint32_t)(s[1] - '0');
    uint32_t m = (uint32_t)(s[3] - '0') * 10 + (uint32_t)(s[4] - '0');
    if (h > max_hour || m > 59) return false;
    *out = h * 3600 + m * 60;
    return true;
}

static void parse_peak(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_rl_config_t *rl) {
    uint32_t a, b;
    if (n->kind != SL_YAML_SCALAR || n->len != 11 || n->value[5] != '-' ||
        !hhmm(n->value, 23, &a) || !hhmm(n->value + 6, 23, &b)) {
        sl_gw__err(c, n,
                   "limits.peak_hours must be \"HH:MM-HH:MM\" (local time, e.g. \"09:00-17:00\"; "
                   "may wrap midnight)");
        return;
    }
    if (a == b) {
        sl_gw__err(c, n,
                   "limits.peak_hours starts and ends at the same time (leave it out for "
                   "no peak hours)");
        return;
    }
    rl->peak_start_s = a;
    rl->peak_end_s = b;
}

static void parse_offset(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_rl_config_t *rl) {
    uint32_t v;
    if (n->kind == SL_YAML_SCALAR && strcmp(n->value, "Z") == 0) {
        rl->utc_offset_s = 0;
        return;
    }
    if (n->kind != SL_YAML_SCALAR || n->len != 6 || (n->value[0] != '+' && n->value[0] != '-') ||
        !hhmm(n->value + 1, 14, &v) || v > 14 * 3600) {
        sl_gw__err(c, n,
                   "limits.utc_offset must be \"+HH:MM\" or \"-HH:MM\" within 14 hours "
                   "(e.g. \"+01:00\")");
        return;
    }
    rl->utc_offset_s = n->value[0] == '-' ? -(int32_t)v : (int32_t)v;
}

static void parse_class(sl_gw__pc_t *c, const sl_yaml_node_t *key, const sl_yaml_node_t *m,
                        sl_rl_class_t *cl) {
    char what[WHAT];
    snprintf(what, sizeof what, "limits.classes.%.32s", key->value);
    int before = c->ye.n;
    if (!sl_gw__want(c, m, SL_YAML_MAP, what)) return;
    static const char *const keys[] = {"rate",       "burst",        "peak_rate",
                                       "peak_burst", "counts_quota", NULL};
    sl_yaml_check_keys(&c->ye, m, keys, what);
    const sl_yaml_node_t *rate = sl_yaml_map_get(m, "rate");
    const sl_yaml_node_t *burst = sl_yaml_map_get(m, "burst");
    const sl_yaml_node_t *prate = sl_yaml_map_get(m, "peak_rate");
    const sl_yaml_node_t *pburst = sl_yaml_map_get(m, "peak_burst");
    const sl_yaml_node_t *cq = sl_yaml_map_get(m, "counts_quota");
    char w[WHAT + 16];
    uint64_t u;
    if (!rate || !burst)
        sl_gw__err(c, m, "%s needs rate and burst (e.g. {rate: 100, burst: 200})", what);
    if (rate) {
        snprintf(w, sizeof w, "%s.rate", what);
        sl_gw__number(c, rate, w, 0, SL_RL_RATE_MAX, &cl->rate);
    }
    if (burst) {
        snprintf(w, sizeof w, "%s.burst", what);
        if (sl_gw__uint(c, burst, w, 1, SL_RL_BURST_MAX, &u)) cl->burst = (uint32_t)u;
    }
    if (!prate != !pburst)
        sl_gw__err(c, prate ? prate : pburst, "%s needs both peak_rate and peak_burst, or neither",
                   what);
    if (prate) {
        snprintf(w, sizeof w, "%s.peak_rate", what);
        sl_gw__number(c, prate, w, 0, SL_RL_RATE_MAX, &cl->peak_rate);
    }
    if (pburst) {
        snprintf(w, sizeof w, "%s.peak_burst", what);
        if (sl_gw__uint(c, pburst, w, 1, SL_RL_BURST_MAX, &u)) cl->peak_burst = (uint32_t)u;
    }
    /* Predictions spend the daily quota unless told otherwise; metadata and admin calls do not. */
    cl->counts_quota = strcmp(key->value, SL_GW_CLASS_PREDICT) == 0;
    if (cq) {
        snprintf(w, sizeof w, "%s.counts_quota", what);
        sl_gw__bool(c, cq, w, &cl->counts_quota);
    }
    /* The limiter's own rules, on a throwaway limiter of this class alone (2 buckets). */
    if (c->ye.n == before) {
        sl_rl_config_t one = {.classes = cl, .n_classes = 1, .max_buckets = 2};
        sl_ratelimiter_t rl;
        sl_buf_t msg = SL_BUF_INIT;
        if (sl_rl_local_new(&one, &rl, &msg) != 0)
            sl_gw__err(c, m, "%s: %s", what, msg.data ? msg.data : "invalid");
        else
            sl_rl_free(&rl);
        sl_buf_free(&msg);
    }
}

static void parse_classes(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_rl_config_t *rl) {
    if (!sl_gw__want(c, n, SL_YAML_MAP, "limits.classes")) return;
    sl_yaml_check_keys(&c->ye, n, class_names, "limits.classes");
    if (n->n == 0 || n->n > SL_RL_MAX_CLASSES) {
        sl_gw__err(c, n, "limits.classes must name 1..%d route classes (predict, metadata, admin)",
                   SL_RL_MAX_CLASSES);
        return;
    }
    sl_rl_class_t *cls = sl_calloc(n->n, sizeof *cls);
    rl->classes = cls;
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *k = n->keys[i];
        bool known = false;
        for (size_t j = 0; class_names[j] && !known; j++)
            known = strcmp(class_names[j], k->value) == 0;
        if (!known) continue; /* reported by check_keys */
        sl_rl_class_t *cl = &cls[rl->n_classes++];
        cl->name = sl_strdup(k->value);
        parse_class(c, k, n->items[i], cl);
    }
}

static void parse_tiers(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_rl_config_t *rl) {
    if (!sl_gw__want(c, n, SL_YAML_MAP, "limits.tiers")) return;
    if (n->n > SL_RL_MAX_TIERS) {
        sl_gw__err(c, n, "limits.tiers names %zu tiers (at most %d)", n->n, SL_RL_MAX_TIERS);
        return;
    }
    sl_rl_tier_t *tiers = n->n ? sl_calloc(n->n, sizeof *tiers) : NULL;
    rl->tiers = tiers;
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *k = n->keys[i];
        if (!sl_gw__name_ok(k->value, k->len, SL_RL_NAME_MAX)) {
            sl_gw__err(c, k,
                       "tier name '%.64s' must be 1..%d bytes of letters, digits, '_', '.', '-'",
                       k->value, SL_RL_NAME_MAX);
            continue;
        }
        char what[WHAT];
        snprintf(what, sizeof what, "limits.tiers.%s", k->value);
        uint64_t q;
        if (!sl_gw__uint(c, n->items[i], what, 0, (uint64_t)1 << 50, &q)) continue;
        tiers[rl->n_tiers].name = sl_strdup(k->value);
        tiers[rl->n_tiers].daily_quota = q;
        rl->n_tiers++;
    }
}

static void parse_redis(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_rl_redis_opts_t *r) {
    if (!sl_gw__want(c, n, SL_YAML_MAP, "limits.redis")) return;
    static const char *const keys[] = {"address", "password", "key_prefix",
                                       "timeout", "fail",     NULL};
    sl_yaml_check_keys(&c->ye, n, keys, "limits.redis");
    const sl_yaml_node_t *v;
    sl_buf_t b = SL_BUF_INIT;
    if (!(v = sl_yaml_map_get(n, "address"))) {
        sl_gw__err(c, n, "limits.redis needs an address (e.g. address: \"127.0.0.1:6379\")");
    } else if (sl_gw__expand(c, v, "limits.redis.address", SL_UPSTREAM_ADDR_MAX, &b)) {
        char host[SL_UPSTREAM_ADDR_MAX];
        uint16_t port;
        if (b.len && sl_upstream_addr_split(b.data, host, sizeof host, &port)) {
            r->host = sl_strdup(host);
            r->port = port;
        } else {
            sl_gw__err(c, v,
                       "limits.redis.address must be host:port (a DNS name, IPv4 or [IPv6], "
                       "port 1..65535)");
        }
    }
    sl_buf_reset(&b);
    sl_buf_puts(&b, "");
    if ((v = sl_yaml_map_get(n, "password")) && !sl_yaml_is_null(v)) {
        if (!sl_gw__expand(c, v, "limits.redis.password", REDIS_SECRET_MAX, &b)) sl_buf_reset(&b);
    }
    r->password = sl_strndup(b.data ? b.data : "", b.len);
    /* The expanded secret must not outlive the parse in a buffer nobody clears. */
    if (b.data) memset(b.data, 0, b.cap);
    sl_buf_reset(&b);
    const char *prefix = "sluice:rl:";
    if ((v = sl_yaml_map_get(n, "key_prefix")))
        sl_gw__string(c, v, "limits.redis.key_prefix", REDIS_PREFIX_MAX, &prefix);
    r->key_prefix = sl_strdup(prefix);
    r->timeout_ms = 50;
    uint64_t ms;
    if ((v = sl_yaml_map_get(n, "timeout")) &&
        sl_gw__duration(c, v, "limits.redis.timeout", 1, REDIS_TIMEOUT_MAX, &ms))
        r->timeout_ms = (uint32_t)ms;
    r->fail_open = true;
    if ((v = sl_yaml_map_get(n, "fail"))) {
        if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "open") == 0)
            r->fail_open = true;
        else if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "closed") == 0)
            r->fail_open = false;
        else
            sl_gw__err(c, v, "limits.redis.fail must be open or closed");
    }
    sl_buf_free(&b);
}

void sl_gw__parse_limits(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_gw_limits_t *out) {
    memset(out, 0, sizeof *out);
    if (!sl_gw__want_map(c, n, "limits")) return;
    static const char *const keys[] = {"mode",        "redis",      "classes",
                                       "tiers",       "peak_hours", "utc_offset",
                                       "max_buckets", "idle_ttl",   NULL};
    sl_yaml_check_keys(&c->ye, n, keys, "limits");
    int before = c->ye.n;
    sl_rl_config_t *rl = &out->rl;
    out->mode = SL_GW_LIMITS_LOCAL;
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(n, "mode"))) {
        if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "local") == 0)
            out->mode = SL_GW_LIMITS_LOCAL;
        else if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "redis") == 0)
            out->mode = SL_GW_LIMITS_REDIS;
        else
            sl_gw__err(c, v, "limits.mode must be local or redis");
    }
    /* In local mode a redis block is ignored (so switching modes is a one-line change) and not
     * expanded: its ${REDIS_PASSWORD} need not be set. */
    if (out->mode == SL_GW_LIMITS_REDIS) {
        if ((v = sl_yaml_map_get(n, "redis")))
            parse_redis(c, v, &out->redis);
        else
            sl_gw__err(c, sl_yaml_map_get(n, "mode"),
                       "limits: mode redis needs a redis block with an address");
    }
    if ((v = sl_yaml_map_get(n, "classes")))
        parse_classes(c, v, rl);
    else
        sl_gw__err(c, n,
                   "limits needs classes (e.g. classes: {predict: {rate: 100, burst: 200}}); "
                   "leave limits out for no limits");
    if ((v = sl_yaml_map_get(n, "tiers"))) parse_tiers(c, v, rl);
    if ((v = sl_yaml_map_get(n, "peak_hours")) && !sl_yaml_is_null(v)) parse_peak(c, v, rl);
    if ((v = sl_yaml_map_get(n, "utc_offset"))) parse_offset(c, v, rl);
    uint64_t u;
    rl->max_buckets = 65536;
    if ((v = sl_yaml_map_get(n, "max_buckets")) &&
        sl_gw__uint(c, v, "limits.max_buckets", 2, SL_RL_BUCKETS_MAX, &u))
        rl->max_buckets = (size_t)u;
    rl->idle_ttl_ms = SL_RL_IDLE_TTL_MS_DEFAULT;
    if ((v = sl_yaml_map_get(n, "idle_ttl")) &&
        sl_gw__duration(c, v, "limits.idle_ttl", MS_S, 7 * DAY_MS, &u))
        rl->idle_ttl_ms = u;
    /* The whole set once more (duplicate names, cross-field rules), on a 2-bucket table. */
    if (c->ye.n == before) {
        sl_rl_config_t all = *rl;
        all.max_buckets = 2;
        sl_ratelimiter_t lim;
        sl_buf_t msg = SL_BUF_INIT;
        if (sl_rl_local_new(&all, &lim, &msg) != 0) {
            sl_gw__err(c, n, "limits: %s", msg.data ? msg.data : "invalid");
        } else {
            sl_rl_free(&lim);
            /* The Redis limiter's own checks of its options; it connects nothing here. */
            if (out->mode == SL_GW_LIMITS_REDIS) {
                if (sl_rl_redis_new(&all, &out->redis, &lim, &msg) != 0)
                    sl_gw__err(c, sl_yaml_map_get(n, "redis"), "limits.redis: %s",
                               msg.data ? msg.data : "invalid");
                else
                    sl_rl_free(&lim);
            }
        }
        sl_buf_free(&msg);
    }
}

void sl_gw__limits_free(sl_gw_limits_t *l) {
    for (size_t i = 0; i < l->rl.n_classes; i++)
        free((char *)l->rl.classes[i].name);
    free((sl_rl_class_t *)l->rl.classes);
    for (size_t i = 0; i < l->rl.n_tiers; i++)
        free((char *)l->rl.tiers[i].name);
    free((sl_rl_tier_t *)l->rl.tiers);
    free((char *)l->redis.host);
    if (l->redis.password) {
        /* Wipe the secret before giving the memory back. */
        volatile char *p = (volatile char *)l->redis.password;
        while (*p)
            *p++ = 0;
        free((char *)l->redis.password);
    }
    free((char *)l->redis.key_prefix);
    memset(l, 0, sizeof *l);
}
