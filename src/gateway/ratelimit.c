/* The local rate limiter: token buckets and daily quota counters in a sharded hash table, one
 * mutex per shard, so a check is exact across all I/O threads of the process. Tokens are kept
 * as integers in units of 1e-12 token, so refills over a simulated time axis are exact (no
 * floating-point drift: r=10/s over 0.25 s adds exactly 2.5 tokens). What every implementation
 * shares is here too: config validation, request planning, the result's fields, the interface
 * wrappers and header formatting. */
#include "gateway/ratelimit.h"

#include "core/log.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TOK         SL_RL__TOK /* units per token */
#define NS_PER_S    1000000000ull
#define DAY_S       86400
#define KIND_QUOTA  0xffffu
#define NSHARDS     64
#define EXPIRE_PEEK 8 /* idle entries looked at per insert (the rest wait for sl_rl_sweep) */

typedef struct rl_class {
    char name[SL_RL_NAME_MAX + 1];
    bool counts_quota;
    bool has_peak;
    /* [0] off-peak, [1] peak: rate in units per ns (= tokens/s * 1000), capacity in units. */
    uint64_t rate_u[2];
    uint64_t cap_u[2];
    uint32_t burst[2];
    uint32_t window_s[2];
} rl_class_t;

typedef struct rl_tier {
    char name[SL_RL_NAME_MAX + 1];
    uint64_t daily_quota;
} rl_tier_t;

typedef struct rl_entry {
    struct rl_entry *hnext; /* hash chain */
    struct rl_entry *prev;  /* LRU list, head = most recently used */
    struct rl_entry *next;
    uint64_t hash;
    uint64_t last_ns; /* bucket: the monotonic time val refers to */
    uint64_t used_ns; /* last check that touched it */
    uint64_t val;     /* bucket: tokens in units; quota: units spent on `day` */
    int64_t day;
    uint16_t kind; /* class index, or KIND_QUOTA */
    uint16_t len;
    char id[];
} rl_entry_t;

typedef struct rl_shard {
    _Alignas(64) pthread_mutex_t mu;
    rl_entry_t **slots;
    size_t mask;
    rl_entry_t *head, *tail;
    size_t count, cap;
    uint64_t allowed, denied, expired, evicted, evicted_active;
} rl_shard_t;

/* The validated configuration, shared with the Redis limiter. */
struct sl_rl__conf {
    rl_class_t classes[SL_RL_MAX_CLASSES];
    size_t n_classes;
    rl_tier_t tiers[SL_RL_MAX_TIERS];
    size_t n_tiers;
    int32_t utc_offset_s;
    uint32_t peak_start_s, peak_end_s;
    size_t max_buckets;
    uint64_t idle_ttl_ns;
    sl_rl_clock_cb clock;
    void *clock_ctx;
};

typedef struct rl_local {
    sl_rl__conf_t conf;
    size_t nshards;
    rl_shard_t *shards;
} rl_local_t;

/* The time of one check, derived once. */
typedef struct rl_now {
    uint64_t mono;
    int64_t day;      /* local day index */
    uint32_t reset_s; /* seconds to the next local midnight, 1..86400 */
    int peak;         /* 0 or 1: index into the class's parameter pairs */
} rl_now_t;

static void real_clock(void *ctx, uint64_t *wall_ns, uint64_t *mono_ns) {
    *wall_ns = sl_wall_time_ns();
    *mono_ns = sl_now_ns();
}

static void now_get(const sl_rl__conf_t *l, rl_now_t *n, uint64_t *wall_out) {
    uint64_t wall = 0, mono = 0;
    l->clock(l->clock_ctx, &wall, &mono);
    *wall_out = wall;
    int64_t local_s = (int64_t)(wall / NS_PER_S) + l->utc_offset_s;
    int64_t day = local_s / DAY_S;
    if (local_s % DAY_S < 0) day--;
    uint32_t sod = (uint32_t)(local_s - day * DAY_S);
    n->mono = mono;
    n->day = day;
    /* Rounded up: at 23:59:59.2 one second remains, at 00:00:00.0 a whole day. */
    n->reset_s = DAY_S - sod;
    uint32_t a = l->peak_start_s, b = l->peak_end_s;
    bool in = a < b ? (sod >= a && sod < b) : a > b ? (sod >= a || sod < b) : false;
    n->peak = in ? 1 : 0;
}

/* The shard comes from the high bits, hence the finaliser. */
static uint64_t hash_id(uint16_t kind, const char *id, size_t len) {
    return sl_mix64(sl_fnv64(SL_FNV64_INIT ^ kind, id, len));
}

static rl_shard_t *shard_of(rl_local_t *l, uint64_t h) {
    return &l->shards[(h >> 48) & (l->nshards - 1)];
}

/* Seconds (rounded up) until a bucket holding val units reaches target at rate_u. */
static uint32_t secs_until(uint64_t val, uint64_t target, uint64_t rate_u) {
    if (val >= target) return 0;
    if (rate_u == 0) return SL_RL_NEVER;
    uint64_t ns = (target - val + rate_u - 1) / rate_u;
    uint64_t s = (ns + NS_PER_S - 1) / NS_PER_S;
    return s >= SL_RL_NEVER ? SL_RL_NEVER - 1 : (uint32_t)s;
}

/* Brings a bucket to now: clamps it to the current capacity (entering peak hours drops the
 * excess) and adds what the elapsed time refilled. The refill uses the current rate for the
 * whole gap, even one that spans a peak boundary; the error is bounded by one gap. */
static void bucket_refill(rl_entry_t *e, uint64_t rate_u, uint64_t cap_u, uint64_t mono) {
    if (e->val > cap_u) e->val = cap_u;
    if (mono > e->last_ns) {
        uint64_t dt = mono - e->last_ns;
        uint64_t need = cap_u - e->val;
        if (rate_u > 0 && need > 0) {
            if (dt > need / rate_u)
                e->val = cap_u;
            else
                e->val += dt * rate_u; /* dt * rate_u <= need: no overflow */
        }
        e->last_ns = mono;
    }
}

/* Whether dropping e loses nothing: a bucket that has refilled to full, a quota of a past day. */
static bool entry_lossless(const rl_local_t *l, const rl_entry_t *e, const rl_now_t *now) {
    if (e->kind == KIND_QUOTA) return e->day != now->day || e->val == 0;
    const rl_class_t *c = &l->conf.classes[e->kind];
    uint64_t rate = c->rate_u[now->peak], cap = c->cap_u[now->peak];
    if (e->val >= cap) return true;
    if (rate == 0 || now->mono <= e->last_ns) return false;
    return now->mono - e->last_ns > (cap - e->val) / rate;
}

static void lru_unlink(rl_shard_t *s, rl_entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(rl_shard_t *s, rl_entry_t *e) {
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
}

static void entry_remove(rl_shard_t *s, rl_entry_t *e) {
    rl_entry_t **pp = &s->slots[e->hash & s->mask];
    while (*pp != e) {
        SL_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    lru_unlink(s, e);
    s->count--;
    free(e);
}

/* Drops idle, lossless entries from the cold end of the LRU, at most max of them looked at;
 * keep is never dropped. Stops at the first entry that is not idle (the rest are newer). */
static void expire_idle(rl_local_t *l, rl_shard_t *s, const rl_now_t *now, const rl_entry_t *keep,
                        size_t max) {
    rl_entry_t *e = s->tail;
    for (size_t i = 0; e && i < max; i++) {
        rl_entry_t *prev = e->prev;
        if (now->mono < e->used_ns || now->mono - e->used_ns < l->conf.idle_ttl_ns) break;
        if (e != keep && entry_lossless(l, e, now)) {
            entry_remove(s, e);
            s->expired++;
        }
        e = prev;
    }
}

/* Finds the entry for (kind, id) in s, creating it when absent (a bucket starts full). When the
 * shard is full its least recently used entry other than keep is evicted. */
static rl_entry_t *entry_get(rl_local_t *l, rl_shard_t *s, uint64_t h, uint16_t kind,
                             const char *id, size_t len, const rl_now_t *now,
                             const rl_entry_t *keep) {
    for (rl_entry_t *e = s->slots[h & s->mask]; e; e = e->hnext) {
        if (e->hash == h && e->kind == kind && e->len == len && memcmp(e->id, id, len) == 0)
            return e;
    }
    expire_idle(l, s, now, keep, EXPIRE_PEEK);
    while (s->count >= s->cap) {
        rl_entry_t *victim = s->tail != keep ? s->tail : s->tail->prev;
        SL_ASSERT(victim != NULL); /* cap >= 2, so a full shard holds another entry */
        bool lossy = !entry_lossless(l, victim, now);
        entry_remove(s, victim);
        s->evicted++;
        if (lossy) {
            s->evicted_active++;
            SL_WARN("gateway", "rate-limit table full: evicted a bucket that was in use",
                    SL_LF_U("max_buckets", l->conf.max_buckets));
        }
    }
    rl_entry_t *e = sl_malloc(sizeof *e + len);
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, len);
    e->hash = h;
    e->kind = kind;
    e->len = (uint16_t)len;
    e->last_ns = now->mono;
    e->day = now->day;
    if (kind != KIND_QUOTA) e->val = l->conf.classes[kind].cap_u[now->peak];
    e->hnext = s->slots[h & s->mask];
    s->slots[h & s->mask] = e;
    lru_push_head(s, e);
    s->count++;
    return e;
}

static void entry_touch(rl_shard_t *s, rl_entry_t *e, const rl_now_t *now) {
    e->used_ns = now->mono;
    if (s->head != e) {
        lru_unlink(s, e);
        lru_push_head(s, e);
    }
}

static bool id_ok(const char *id, size_t *len) {
    if (!id) return false;
    *len = strnlen(id, SL_RL_ID_MAX + 1);
    return *len >= 1 && *len <= SL_RL_ID_MAX;
}

/* The policy closest to exhaustion: the smallest remaining share of its quota; on a tie the
 * one that takes longer to reset (that is what the client must wait for). */
static uint32_t pick_tightest(const sl_rl_result_t *r) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < r->n_policies; i++) {
        const sl_rl_policy_t *a = &r->policies[i], *b = &r->policies[best];
        unsigned __int128 lhs = (unsigned __int128)a->remaining * b->quota;
        unsigned __int128 rhs = (unsigned __int128)b->remaining * a->quota;
        if (lhs < rhs || (lhs == rhs && a->reset_s > b->reset_s)) best = i;
    }
    return best;
}

int sl_rl__plan(const sl_rl__conf_t *l, const sl_rl_request_t *req, sl_rl__plan_t *p) {
    memset(p, 0, sizeof *p);
    size_t klen = 0, qlen = 0;
    if (!req || !id_ok(req->key_id, &klen) || !req->route_class) return SL_EINVAL;
    const rl_class_t *c = NULL;
    uint16_t kind = 0;
    for (size_t i = 0; i < l->n_classes; i++) {
        if (strcmp(l->classes[i].name, req->route_class) == 0) {
            c = &l->classes[i];
            kind = (uint16_t)i;
            break;
        }
    }
    if (!c) return SL_ENOENT;
    const rl_tier_t *t = NULL;
    if (req->tier) {
        for (size_t i = 0; i < l->n_tiers && !t; i++)
            if (strcmp(l->tiers[i].name, req->tier) == 0) t = &l->tiers[i];
        if (!t) return SL_ENOENT;
    }
    const char *qid = req->quota_id ? req->quota_id : req->key_id;
    bool use_quota = c->counts_quota && t && t->daily_quota > 0;
    if (use_quota && !id_ok(qid, &qlen)) return SL_EINVAL;

    rl_now_t now;
    now_get(l, &now, &p->wall_ns);
    int pi = c->has_peak ? now.peak : 0;
    uint64_t cost = req->cost ? req->cost : 1;
    if (cost > c->burst[pi]) return SL_ERANGE;

    p->class_name = c->name;
    p->class_idx = kind;
    p->key_len = klen;
    p->use_quota = use_quota;
    if (use_quota) {
        p->quota_id = qid;
        p->quota_len = qlen;
        p->quota = t->daily_quota;
    }
    p->cost = cost;
    p->cost_u = cost * TOK;
    p->rate_u = c->rate_u[pi];
    p->cap_u = c->cap_u[pi];
    p->burst = c->burst[pi];
    p->window_s = c->window_s[pi];
    p->rate_min_u = SL_MIN(c->rate_u[0], c->rate_u[1]);
    p->cap_max_u = SL_MAX(c->cap_u[0], c->cap_u[1]);
    p->mono_ns = now.mono;
    p->day = now.day;
    p->day_reset_s = now.reset_s;
    p->peak = now.peak;
    p->idle_ttl_ms = l->idle_ttl_ns / 1000000ull;
    return 0;
}

void sl_rl__result(const sl_rl__plan_t *p, bool allowed, uint64_t bucket_u, uint64_t quota_used,
                   sl_rl_result_t *out) {
    memset(out, 0, sizeof *out);
    out->allowed = allowed;
    sl_rl_policy_t *pb = &out->policies[0];
    pb->name = p->class_name;
    pb->quota = p->burst;
    pb->window_s = p->window_s;
    pb->remaining = bucket_u / TOK;
    pb->reset_s = secs_until(bucket_u, p->cap_u, p->rate_u);
    out->n_policies = 1;
    if (p->use_quota) {
        sl_rl_policy_t *pq = &out->policies[1];
        pq->name = SL_RL_DAILY_POLICY;
        pq->quota = p->quota;
        pq->window_s = DAY_S;
        pq->remaining = quota_used < p->quota ? p->quota - quota_used : 0;
        pq->reset_s = p->day_reset_s;
        out->n_policies = 2;
    }
    if (!allowed) {
        /* A deny spends nothing, so the state after it tells which limit refused. */
        bool bucket_ok = bucket_u >= p->cost_u;
        bool quota_ok =
            !p->use_quota || (quota_used <= p->quota && p->quota - quota_used >= p->cost);
        uint32_t ra = 0;
        if (!bucket_ok) ra = secs_until(bucket_u, p->cost_u, p->rate_u);
        if (!quota_ok) ra = SL_MAX(ra, p->day_reset_s);
        out->retry_after_s = SL_MAX(1u, SL_MIN(ra, SL_RL_RETRY_MAX_S));
    }
    out->tightest = pick_tightest(out);
}

static int local_check(void *ctx, const sl_rl_request_t *req, sl_rl_result_t *out) {
    rl_local_t *l = ctx;
    sl_rl__plan_t p;
    int rc = sl_rl__plan(&l->conf, req, &p);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    rl_now_t now = {.mono = p.mono_ns, .day = p.day, .reset_s = p.day_reset_s, .peak = p.peak};
    uint16_t kind = p.class_idx;

    uint64_t hb = hash_id(kind, req->key_id, p.key_len);
    rl_shard_t *sb = shard_of(l, hb), *sq = NULL;
    uint64_t hq = 0;
    if (p.use_quota) {
        hq = hash_id(KIND_QUOTA, p.quota_id, p.quota_len);
        sq = shard_of(l, hq);
    }
    /* Two shards are locked in address order, so two checks never deadlock. */
    rl_shard_t *first = sb, *second = sq && sq != sb ? sq : NULL;
    if (second && second < first) {
        first = second;
        second = sb;
    }
    pthread_mutex_lock(&first->mu);
    if (second) pthread_mutex_lock(&second->mu);

    rl_entry_t *b = entry_get(l, sb, hb, kind, req->key_id, p.key_len, &now, NULL);
    bucket_refill(b, p.rate_u, p.cap_u, now.mono);
    entry_touch(sb, b, &now);
    rl_entry_t *q = NULL;
    if (p.use_quota) {
        q = entry_get(l, sq, hq, KIND_QUOTA, p.quota_id, p.quota_len, &now, b);
        if (q->day != now.day) {
            q->day = now.day;
            q->val = 0;
        }
        entry_touch(sq, q, &now);
    }
    bool bucket_ok = b->val >= p.cost_u;
    bool quota_ok = !q || (q->val <= p.quota && p.quota - q->val >= p.cost);
    bool allowed = bucket_ok && quota_ok;
    if (allowed) {
        b->val -= p.cost_u;
        if (q) q->val += p.cost;
        sb->allowed++;
    } else {
        sb->denied++;
    }
    uint64_t bucket_u = b->val, quota_used = q ? q->val : 0;
    if (second) pthread_mutex_unlock(&second->mu);
    pthread_mutex_unlock(&first->mu);
    sl_rl__result(&p, allowed, bucket_u, quota_used, out);
    return 0;
}

static void local_sweep(void *ctx) {
    rl_local_t *l = ctx;
    rl_now_t now;
    uint64_t wall;
    now_get(&l->conf, &now, &wall);
    for (size_t i = 0; i < l->nshards; i++) {
        rl_shard_t *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        expire_idle(l, s, &now, NULL, SIZE_MAX);
        pthread_mutex_unlock(&s->mu);
    }
}

static void local_stats(void *ctx, sl_rl_stats_t *out) {
    rl_local_t *l = ctx;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < l->nshards; i++) {
        rl_shard_t *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        out->allowed += s->allowed;
        out->denied += s->denied;
        out->entries += s->count;
        out->expired += s->expired;
        out->evicted += s->evicted;
        out->evicted_active += s->evicted_active;
        pthread_mutex_unlock(&s->mu);
    }
}

static void local_free(void *ctx) {
    rl_local_t *l = ctx;
    if (!l) return;
    for (size_t i = 0; i < l->nshards; i++) {
        rl_shard_t *s = &l->shards[i];
        rl_entry_t *e = s->head;
        while (e) {
            rl_entry_t *next = e->next;
            free(e);
            e = next;
        }
        free(s->slots);
        pthread_mutex_destroy(&s->mu);
    }
    free(l->shards);
    free(l);
}

/* ---- configuration ---- */

static bool name_ok(const char *s) {
    if (!s) return false;
    size_t n = strnlen(s, SL_RL_NAME_MAX + 1);
    if (n == 0 || n > SL_RL_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
        if (!ok) return false;
    }
    return true;
}

static int cfg_err(sl_buf_t *err, int code, const char *field, size_t i, const char *msg) {
    if (err) sl_buf_printf(err, "rate limits: %s[%zu]: %s", field, i, msg);
    return code;
}

/* Fills one parameter pair of a class; returns 0 or a status with a message. */
static int class_params(rl_class_t *c, int p, double rate, uint32_t burst, size_t i,
                        sl_buf_t *err) {
    if (!(rate >= 0.0 && rate <= SL_RL_RATE_MAX))
        return cfg_err(err, SL_ERANGE, "classes", i,
                       p ? "peak_rate must be 0..1000000 per second"
                         : "rate must be 0..1000000 per second");
    uint64_t rate_u = (uint64_t)llround(rate * 1000.0);
    if (rate > 0.0 && rate_u == 0)
        return cfg_err(err, SL_ERANGE, "classes", i,
                       "a rate below 0.001 per second cannot be represented (use 0)");
    if (burst < 1 || burst > SL_RL_BURST_MAX)
        return cfg_err(err, SL_ERANGE, "classes", i,
                       p ? "peak_burst must be 1..1000000" : "burst must be 1..1000000");
    c->rate_u[p] = rate_u;
    c->burst[p] = burst;
    c->cap_u[p] = (uint64_t)burst * TOK;
    if (rate_u == 0) {
        c->window_s[p] = SL_RL_NEVER;
    } else {
        uint64_t ns = (c->cap_u[p] + rate_u - 1) / rate_u;
        c->window_s[p] = (uint32_t)SL_MAX(1, (ns + NS_PER_S - 1) / NS_PER_S);
    }
    return 0;
}

static int config_load(sl_rl__conf_t *l, const sl_rl_config_t *cfg, sl_buf_t *err) {
    if (!cfg->classes || cfg->n_classes == 0 || cfg->n_classes > SL_RL_MAX_CLASSES) {
        if (err)
            sl_buf_printf(err, "rate limits: classes: between 1 and %d route classes",
                          SL_RL_MAX_CLASSES);
        return SL_EINVAL;
    }
    if (cfg->n_tiers > SL_RL_MAX_TIERS || (cfg->n_tiers && !cfg->tiers)) {
        if (err) sl_buf_printf(err, "rate limits: tiers: at most %d tiers", SL_RL_MAX_TIERS);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_classes; i++) {
        const sl_rl_class_t *in = &cfg->classes[i];
        rl_class_t *c = &l->classes[i];
        if (!name_ok(in->name))
            return cfg_err(err, SL_EINVAL, "classes", i,
                           "name must be 1..32 characters of A-Z a-z 0-9 _ . -");
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->classes[j].name, in->name) == 0)
                return cfg_err(err, SL_EINVAL, "classes", i, "duplicate name");
        if (strcmp(in->name, SL_RL_DAILY_POLICY) == 0)
            return cfg_err(err, SL_EINVAL, "classes", i,
                           "\"daily\" is the quota policy's name in the headers");
        strcpy(c->name, in->name);
        c->counts_quota = in->counts_quota;
        int rc = class_params(c, 0, in->rate, in->burst, i, err);
        if (rc) return rc;
        c->has_peak = in->peak_burst > 0;
        rc = c->has_peak ? class_params(c, 1, in->peak_rate, in->peak_burst, i, err)
                         : class_params(c, 1, in->rate, in->burst, i, err);
        if (rc) return rc;
    }
    l->n_classes = cfg->n_classes;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        if (!name_ok(cfg->tiers[i].name))
            return cfg_err(err, SL_EINVAL, "tiers", i,
                           "name must be 1..32 characters of A-Z a-z 0-9 _ . -");
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->tiers[j].name, cfg->tiers[i].name) == 0)
                return cfg_err(err, SL_EINVAL, "tiers", i, "duplicate name");
        strcpy(l->tiers[i].name, cfg->tiers[i].name);
        l->tiers[i].daily_quota = cfg->tiers[i].daily_quota;
    }
    l->n_tiers = cfg->n_tiers;
    if (cfg->utc_offset_s < -14 * 3600 || cfg->utc_offset_s > 14 * 3600) {
        if (err) sl_buf_puts(err, "rate limits: utc_offset_s must be within -14 h .. +14 h");
        return SL_ERANGE;
    }
    if (cfg->peak_start_s >= DAY_S || cfg->peak_end_s >= DAY_S) {
        if (err) sl_buf_puts(err, "rate limits: peak_start_s and peak_end_s must be 0..86399");
        return SL_ERANGE;
    }
    size_t maxb = cfg->max_buckets ? cfg->max_buckets : 65536;
    if (maxb < 2 || maxb > SL_RL_BUCKETS_MAX) {
        if (err) sl_buf_printf(err, "rate limits: max_buckets must be 2..%u", SL_RL_BUCKETS_MAX);
        return SL_ERANGE;
    }
    l->utc_offset_s = cfg->utc_offset_s;
    l->peak_start_s = cfg->peak_start_s;
    l->peak_end_s = cfg->peak_end_s;
    l->max_buckets = maxb;
    l->idle_ttl_ns = (cfg->idle_ttl_ms ? cfg->idle_ttl_ms : SL_RL_IDLE_TTL_MS_DEFAULT) * 1000000ull;
    l->clock = cfg->clock ? cfg->clock : real_clock;
    l->clock_ctx = cfg->clock_ctx;
    return 0;
}

int sl_rl__conf_new(const sl_rl_config_t *cfg, sl_rl__conf_t **out, sl_buf_t *err) {
    sl_rl__conf_t *c = sl_calloc(1, sizeof *c);
    int rc = config_load(c, cfg, err);
    if (rc) {
        free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int sl_rl_local_new(const sl_rl_config_t *cfg, sl_ratelimiter_t *out, sl_buf_t *err) {
    memset(out, 0, sizeof *out);
    rl_local_t *l = sl_calloc(1, sizeof *l);
    int rc = config_load(&l->conf, cfg, err);
    if (rc) {
        free(l);
        return rc;
    }
    /* Every shard holds at least two entries, so a check that needs a bucket and a quota
     * counter in one full shard can always evict a third entry. The bound is exact (the shards'
     * capacities add up to at most max_buckets); the LRU order is per shard. */
    size_t n = NSHARDS;
    while (n > 1 && l->conf.max_buckets / n < 2)
        n /= 2;
    l->nshards = n;
    l->shards = aligned_alloc(64, n * sizeof *l->shards);
    if (!l->shards) abort();
    memset(l->shards, 0, n * sizeof *l->shards);
    for (size_t i = 0; i < n; i++) {
        rl_shard_t *s = &l->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->cap = l->conf.max_buckets / n;
        size_t slots = 16;
        while (slots < s->cap)
            slots <<= 1;
        s->slots = sl_calloc(slots, sizeof *s->slots);
        s->mask = slots - 1;
    }
    *out = (sl_ratelimiter_t){
        .name = "local",
        .ctx = l,
        .check = local_check,
        .sweep = local_sweep,
        .stats = local_stats,
        .free = local_free,
    };
    return 0;
}

int sl_rl_check_async(const sl_ratelimiter_t *rl, uv_loop_t *loop, const sl_rl_request_t *req,
                      sl_rl_done_cb done, void *arg) {
    if (rl->check_async) return rl->check_async(rl->ctx, loop, req, done, arg);
    sl_rl_result_t res;
    int rc = rl->check(rl->ctx, req, &res);
    if (rc) return rc;
    done(0, &res, arg);
    return 0;
}

void sl_rl_loop_close(const sl_ratelimiter_t *rl, uv_loop_t *loop) {
    if (rl->loop_close) rl->loop_close(rl->ctx, loop);
}

void sl_rl_sweep(const sl_ratelimiter_t *rl) {
    if (rl->sweep) rl->sweep(rl->ctx);
}

void sl_rl_stats(const sl_ratelimiter_t *rl, sl_rl_stats_t *out) {
    if (rl->stats)
        rl->stats(rl->ctx, out);
    else
        memset(out, 0, sizeof *out);
}

void sl_rl_free(sl_ratelimiter_t *rl) {
    if (!rl || !rl->free) return;
    rl->free(rl->ctx);
    memset(rl, 0, sizeof *rl);
}

/* ---- headers (draft-ietf-httpapi-ratelimit-headers-10, Structured Field lists) ---- */

typedef struct hw {
    char *p, *end; /* end leaves room for the NUL */
    bool ok;
} hw_t;

static void hw_put(hw_t *w, const char *s, size_t n) {
    if (!w->ok || (size_t)(w->end - w->p) < n) {
        w->ok = false;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static void hw_u64(hw_t *w, uint64_t v) {
    char tmp[24];
    hw_put(w, tmp, (size_t)(sl_fmt_u64(tmp, v) - tmp));
}

/* An sf-string item name: the names are validated to need no escaping. */
static bool hw_name(hw_t *w, const char *name) {
    if (!name_ok(name)) return false;
    hw_put(w, "\"", 1);
    hw_put(w, name, strlen(name));
    hw_put(w, "\"", 1);
    return true;
}

int sl_rl_format_headers(const sl_rl_result_t *r, sl_rl_headers_t *out) {
    out->policy[0] = out->ratelimit[0] = out->retry_after[0] = '\0';
    if (r->n_policies == 0) {
        /* A decision without policies (fail open/closed): only Retry-After applies. */
        if (!r->allowed) *sl_fmt_u64(out->retry_after, SL_MAX(1u, r->retry_after_s)) = '\0';
        return 0;
    }
    if (r->n_policies > SL_RL_MAX_POLICIES || r->tightest >= r->n_policies) return SL_EINVAL;
    hw_t w = {out->policy, out->policy + sizeof out->policy - 1, true};
    for (uint32_t i = 0; i < r->n_policies; i++) {
        const sl_rl_policy_t *p = &r->policies[i];
        if (i) hw_put(&w, ", ", 2);
        if (!hw_name(&w, p->name)) goto bad;
        hw_put(&w, ";q=", 3);
        hw_u64(&w, p->quota);
        if (p->window_s != SL_RL_NEVER) {
            hw_put(&w, ";w=", 3);
            hw_u64(&w, p->window_s);
        }
    }
    if (!w.ok) goto bad;
    *w.p = '\0';

    const sl_rl_policy_t *t = &r->policies[r->tightest];
    w = (hw_t){out->ratelimit, out->ratelimit + sizeof out->ratelimit - 1, true};
    if (!hw_name(&w, t->name)) goto bad;
    hw_put(&w, ";r=", 3);
    hw_u64(&w, t->remaining);
    if (t->reset_s != SL_RL_NEVER) {
        hw_put(&w, ";t=", 3);
        hw_u64(&w, t->reset_s);
    }
    if (!w.ok) goto bad;
    *w.p = '\0';

    if (!r->allowed) {
        char *e = sl_fmt_u64(out->retry_after, SL_MAX(1u, r->retry_after_s));
        *e = '\0';
    }
    return 0;
bad:
    out->policy[0] = out->ratelimit[0] = out->retry_after[0] = '\0';
    return SL_EINVAL;
}
