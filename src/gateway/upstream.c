/* The upstream pool (see upstream.h): endpoint set, P2C selection, outlier ejection, slow start,
 * admission and the per-request retry loop. Concurrency: the endpoint set is swapped under a
 * rwlock (readers are pickers, the writer is the DNS re-resolver); per-endpoint counters are
 * atomics; ejection decisions, which must see the whole pool at once, take one pool mutex, but
 * only when an endpoint reaches its consecutive-failure threshold. Endpoints are
 * reference-counted so a request keeps its endpoint across a set swap. */
#include "gateway/upstream.h"

#include "core/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LD(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ST(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)
#define COMP      "gateway"

struct sl_upstream_endpoint {
    char addr[SL_UPSTREAM_ADDR_MAX];
    uint32_t refs;             /* atomic: the set holding it plus each request that tried it */
    uint32_t in_flight;        /* atomic */
    uint32_t consecutive;      /* atomic: consecutive failures */
    uint64_t ejected_until;    /* atomic: ms, 0 when never ejected */
    uint64_t slow_start_until; /* atomic: ms, 0 when not in slow start */
    uint32_t ejections;        /* atomic writes under eject_mu: the ejection multiplier */
    sl_breaker_t *breaker;
};

struct sl_upstream_pool {
    char *name;
    sl_upstream_config_t cfg;
    sl_upstream_env_t env;
    pthread_rwlock_t set_lock;
    sl_upstream_endpoint_t **eps;
    size_t n;
    bool had_set; /* a first set was installed: later additions slow-start */
    pthread_mutex_t eject_mu;
    sl_retry_budget_t *budget;
    uint32_t pending, active; /* atomic */
    uint64_t requests, retries, rejected_pending, rejected_concurrency, unavailable,
        budget_exhausted, ejections; /* atomic counters */
};

const char *sl_upstream_reason_name(sl_upstream_reason_t r) {
    switch (r) {
    case SL_UPSTREAM_OK:
        return "ok";
    case SL_UPSTREAM_PENDING_FULL:
        return "pending_full";
    case SL_UPSTREAM_CONCURRENCY_FULL:
        return "concurrency_full";
    case SL_UPSTREAM_NO_ENDPOINTS:
        return "no_endpoints";
    case SL_UPSTREAM_ALL_EJECTED:
        return "all_ejected";
    case SL_UPSTREAM_ALL_OPEN:
        return "all_breakers_open";
    case SL_UPSTREAM_ALL_UNAVAILABLE:
        return "all_unavailable";
    case SL_UPSTREAM_DEADLINE:
        return "deadline";
    }
    return "unknown";
}

void sl_upstream_config_default(sl_upstream_config_t *c) {
    memset(c, 0, sizeof *c);
    sl_breaker_config_default(&c->breaker);
    c->outlier = (sl_upstream_outlier_config_t){
        .consecutive_failures = 5,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 300000,
        .max_ejection_percent = 10,
        .interval_ms = 10000,
        .always_eject_one = true,
    };
    c->slow_start = (sl_upstream_slow_start_config_t){.window_ms = 10000, .min_weight_percent = 10};
    sl_retry_policy_default(&c->retry);
    sl_retry_budget_config_default(&c->retry_budget);
    c->max_pending = 1024;
    c->max_concurrent = 1024;
}

int sl_upstream_config_validate(const sl_upstream_config_t *c, sl_buf_t *err) {
    int rc;
    if ((rc = sl_breaker_config_validate(&c->breaker, err)) != 0) return rc;
    if ((rc = sl_retry_policy_validate(&c->retry, err)) != 0) return rc;
    if ((rc = sl_retry_budget_config_validate(&c->retry_budget, err)) != 0) return rc;
    const char *bad = NULL;
    const sl_upstream_outlier_config_t *o = &c->outlier;
    if (o->consecutive_failures > 0 && o->base_ejection_ms == 0)
        bad = "outlier base_ejection_ms must be > 0";
    else if (o->consecutive_failures > 0 && o->max_ejection_ms < o->base_ejection_ms)
        bad = "outlier max_ejection_ms must be >= base_ejection_ms";
    else if (o->max_ejection_percent > 100)
        bad = "outlier max_ejection_percent must be 0..100";
    else if (c->slow_start.window_ms > 0 &&
             (c->slow_start.min_weight_percent < 1 || c->slow_start.min_weight_percent > 100))
        bad = "slow_start min_weight_percent must be 1..100";
    else if (c->max_pending < 1)
        bad = "max_pending must be at least 1";
    else if (c->max_concurrent < 1)
        bad = "max_concurrent must be at least 1";
    if (!bad) return 0;
    sl_buf_printf(err, "upstream: %s", bad);
    return SL_EINVAL;
}

static uint64_t now_ms(const sl_upstream_pool_t *p) {
    return p->env.now_ms ? p->env.now_ms(p->env.arg) : sl_now_ms();
}

static uint64_t rnd(const sl_upstream_pool_t *p) {
    return p->env.rand64 ? p->env.rand64(p->env.arg) : sl_rand64();
}

sl_upstream_pool_t *sl_upstream_pool_new(const char *name, const sl_upstream_config_t *c,
                                         const sl_upstream_env_t *env) {
    sl_buf_t why = SL_BUF_INIT;
    int rc = sl_upstream_config_validate(c, &why);
    sl_buf_free(&why);
    SL_ASSERT(rc == 0);
    sl_upstream_pool_t *p = sl_calloc(1, sizeof *p);
    p->name = sl_strdup(name);
    p->cfg = *c;
    if (env) p->env = *env;
    pthread_rwlock_init(&p->set_lock, NULL);
    pthread_mutex_init(&p->eject_mu, NULL);
    p->budget = sl_retry_budget_new(&c->retry_budget);
    return p;
}

static void ep_unref(sl_upstream_endpoint_t *ep) {
    if (SUB(&ep->refs, 1) != 0) return;
    sl_breaker_free(ep->breaker);
    free(ep);
}

void sl_upstream_pool_free(sl_upstream_pool_t *p) {
    if (!p) return;
    SL_ASSERT(LD(&p->pending) == 0 && LD(&p->active) == 0);
    for (size_t i = 0; i < p->n; i++)
        ep_unref(p->eps[i]);
    free(p->eps);
    sl_retry_budget_free(p->budget);
    pthread_rwlock_destroy(&p->set_lock);
    pthread_mutex_destroy(&p->eject_mu);
    free(p->name);
    free(p);
}

bool sl_upstream_addr_ok(const char *a) {
    size_t len = strlen(a);
    if (len == 0 || len >= SL_UPSTREAM_ADDR_MAX) return false;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a) return false;
    const char *h = a, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']' || he - h < 3) return false;
        for (const char *q = h + 1; q < he - 1; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') return false;
    } else {
        for (const char *q = h; q < he; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_') return false;
    }
    const char *port = colon + 1;
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5) return false;
    unsigned v = 0;
    for (const char *q = port; *q; q++) {
        if (*q < '0' || *q > '9') return false;
        v = v * 10 + (unsigned)(*q - '0');
    }
    return v >= 1 && v <= 65535;
}

bool sl_upstream_addr_split(const char *a, char *host, size_t cap, uint16_t *port) {
    if (!sl_upstream_addr_ok(a)) return false;
    const char *colon = strrchr(a, ':');
    const char *h = a, *he = colon;
    if (*h == '[') {
        h++;
        he--;
    }
    size_t n = (size_t)(he - h);
    if (n >= cap) return false;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (uint16_t)strtoul(colon + 1, NULL, 10);
    return true;
}

int sl_upstream_pool_set_endpoints(sl_upstream_pool_t *p, const char *const *addrs, size_t n,
                                   sl_buf_t *err) {
    if (n > SL_UPSTREAM_MAX_ENDPOINTS) {
        sl_buf_printf(err, "upstream %s: %zu endpoints, at most %u", p->name, n,
                      SL_UPSTREAM_MAX_ENDPOINTS);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sl_upstream_addr_ok(addrs[i])) {
            sl_buf_printf(err, "upstream %s: endpoint '%.*s' is not host:port", p->name, 300,
                          addrs[i]);
            return SL_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(addrs[i], addrs[j]) == 0) {
                sl_buf_printf(err, "upstream %s: endpoint '%s' listed twice", p->name, addrs[i]);
                return SL_EINVAL;
            }
    }
    uint64_t now = now_ms(p);
    sl_upstream_endpoint_t **neu = n ? sl_calloc(n, sizeof *neu) : NULL;
    pthread_rwlock_wrlock(&p->set_lock);
    bool *kept = p->n ? sl_calloc(p->n, sizeof *kept) : NULL;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p->n && !neu[i]; j++)
            if (!kept[j] && strcmp(p->eps[j]->addr, addrs[i]) == 0) {
                neu[i] = p->eps[j]; /* the old set's reference moves to the new set */
                kept[j] = true;
            }
        if (neu[i]) continue;
        sl_upstream_endpoint_t *ep = sl_calloc(1, sizeof *ep);
        memcpy(ep->addr, addrs[i], strlen(addrs[i]) + 1);
        ep->refs = 1;
        ep->breaker = sl_breaker_new(&p->cfg.breaker);
        if (p->had_set && p->cfg.slow_start.window_ms > 0)
            ep->slow_start_until = now + p->cfg.slow_start.window_ms;
        neu[i] = ep;
    }
    sl_upstream_endpoint_t **old = p->eps;
    size_t old_n = p->n;
    p->eps = neu;
    p->n = n;
    p->had_set = true;
    pthread_rwlock_unlock(&p->set_lock);
    for (size_t j = 0; j < old_n; j++)
        if (!kept[j]) ep_unref(old[j]);
    free(kept);
    free(old);
    SL_INFO(COMP, "upstream endpoints set", SL_LF_S("pool", p->name), SL_LF_U("endpoints", n));
    return 0;
}

/* The slow-start weight in (0, 1] at now. */
static double ep_weight(const sl_upstream_pool_t *p, sl_upstream_endpoint_t *ep, uint64_t now) {
    uint64_t until = LD(&ep->slow_start_until), win = p->cfg.slow_start.window_ms;
    if (until == 0 || win == 0 || now >= until) return 1.0;
    double min = p->cfg.slow_start.min_weight_percent / 100.0;
    if (until - now >= win) return min; /* not started yet (still ejected) */
    double w = (double)(win - (until - now)) / (double)win;
    return w < min ? min : w;
}

static bool ep_ejected(sl_upstream_endpoint_t *ep, uint64_t now) {
    return now < LD(&ep->ejected_until);
}

int sl_upstream_request_begin(sl_upstream_pool_t *p, sl_upstream_request_t *req,
                              uint64_t client_deadline_ms, bool idempotent,
                              sl_upstream_reason_t *why) {
    memset(req, 0, sizeof *req);
    if (ADD(&p->pending, 1) > p->cfg.max_pending) {
        SUB(&p->pending, 1);
        ADD(&p->rejected_pending, 1);
        *why = SL_UPSTREAM_PENDING_FULL;
        return SL_ELIMIT;
    }
    uint64_t now = now_ms(p);
    req->pool = p;
    req->pending = true;
    req->idempotent = idempotent;
    req->deadline_ms = sl_retry_deadline_ms(&p->cfg.retry, now, client_deadline_ms);
    sl_retry_budget_on_request(p->budget, now);
    ADD(&p->requests, 1);
    *why = SL_UPSTREAM_OK;
    return 0;
}

/* Power of two choices among cand[0..m) (m >= 1): returns a position in cand. */
static size_t p2c(const sl_upstream_pool_t *p, sl_upstream_endpoint_t *const *cand, size_t m,
                  uint64_t now) {
    if (m == 1) return 0;
    size_t i = rnd(p) % m, j = rnd(p) % (m - 1);
    if (j >= i) j++;
    double wi = ep_weight(p, cand[i], now), wj = ep_weight(p, cand[j], now);
    uint32_t fi = LD(&cand[i]->in_flight), fj = LD(&cand[j]->in_flight);
    if (wi >= 1.0 && wj >= 1.0) return fj < fi ? j : i; /* a tie keeps i, itself random */
    double si = wi / (fi + 1.0), sj = wj / (fj + 1.0);
    double u = (double)(rnd(p) >> 11) * 0x1p-53;
    return u * (si + sj) < si ? i : j;
}

static bool tried(const sl_upstream_request_t *req, const sl_upstream_endpoint_t *ep) {
    for (uint32_t k = 0; k < req->attempts; k++)
        if (req->tried[k] == ep) return true;
    return false;
}

int sl_upstream_request_pick(sl_upstream_request_t *req, sl_upstream_endpoint_t **ep_out,
                             sl_upstream_reason_t *why) {
    sl_upstream_pool_t *p = req->pool;
    SL_ASSERT(p && req->pending && !req->current && req->attempts < SL_RETRY_MAX_ATTEMPTS);
    uint64_t now = now_ms(p);
    if (now >= req->deadline_ms) {
        *why = SL_UPSTREAM_DEADLINE;
        return SL_ETIMEOUT;
    }
    if (ADD(&p->active, 1) > p->cfg.max_concurrent) {
        SUB(&p->active, 1);
        ADD(&p->rejected_concurrency, 1);
        *why = SL_UPSTREAM_CONCURRENCY_FULL;
        return SL_ELIMIT;
    }
    sl_upstream_endpoint_t *fresh[SL_UPSTREAM_MAX_ENDPOINTS], *again[SL_RETRY_MAX_ATTEMPTS];
    size_t nf = 0, na = 0, n_ejected = 0, n_open = 0;
    pthread_rwlock_rdlock(&p->set_lock);
    size_t n = p->n;
    for (size_t k = 0; k < n; k++) {
        sl_upstream_endpoint_t *ep = p->eps[k];
        if (ep_ejected(ep, now))
            n_ejected++;
        else if (!sl_breaker_would_allow(ep->breaker, now))
            n_open++;
        else if (tried(req, ep))
            again[na++] = ep;
        else
            fresh[nf++] = ep;
    }
    /* Prefer endpoints this request has not tried (Envoy's previous_hosts predicate); fall back
     * to tried ones rather than fail when nothing else is available. */
    sl_upstream_endpoint_t **cand = nf ? fresh : again;
    size_t m = nf ? nf : na;
    sl_upstream_endpoint_t *ep = NULL;
    uint64_t ticket = 0;
    while (m > 0) {
        size_t k = p2c(p, cand, m, now);
        if (sl_breaker_acquire(cand[k]->breaker, now, &ticket)) {
            ep = cand[k];
            break;
        }
        n_open++; /* its half-open slots filled since we looked */
        cand[k] = cand[--m];
        if (m == 0 && cand == fresh && na > 0) {
            cand = again;
            m = na;
        }
    }
    if (ep) {
        ADD(&ep->refs, 1);
        ADD(&ep->in_flight, 1);
    }
    pthread_rwlock_unlock(&p->set_lock);
    if (!ep) {
        SUB(&p->active, 1);
        ADD(&p->unavailable, 1);
        if (n == 0) {
            *why = SL_UPSTREAM_NO_ENDPOINTS;
            return SL_ENOENT;
        }
        *why = n_ejected == n ? SL_UPSTREAM_ALL_EJECTED
               : n_open >= n  ? SL_UPSTREAM_ALL_OPEN
                              : SL_UPSTREAM_ALL_UNAVAILABLE;
        return SL_EAGAIN;
    }
    SUB(&p->pending, 1);
    req->pending = false;
    req->current = ep;
    req->breaker_ticket = ticket;
    req->attempt_start_ms = now;
    req->tried[req->attempts++] = ep;
    *ep_out = ep;
    *why = SL_UPSTREAM_OK;
    return 0;
}

int sl_upstream_request_try_timeout_ms(const sl_upstream_request_t *req, uint32_t *timeout_ms) {
    return sl_retry_try_timeout_ms(&req->pool->cfg.retry, req->deadline_ms, now_ms(req->pool),
                                   timeout_ms);
}

/* Ejects ep after its consecutive-failure threshold, if the pool's max percent allows. */
static void maybe_eject(sl_upstream_pool_t *p, sl_upstream_endpoint_t *ep, uint64_t now) {
    const sl_upstream_outlier_config_t *o = &p->cfg.outlier;
    pthread_rwlock_rdlock(&p->set_lock);
    pthread_mutex_lock(&p->eject_mu);
    bool in_set = false;
    size_t ejected = 0;
    for (size_t k = 0; k < p->n; k++) {
        in_set |= p->eps[k] == ep;
        ejected += ep_ejected(p->eps[k], now) ? 1 : 0;
    }
    size_t allowed = p->n * o->max_ejection_percent / 100;
    if (allowed == 0 && o->always_eject_one) allowed = 1;
    uint64_t until = LD(&ep->ejected_until);
    if (in_set && now >= until && ejected < allowed) {
        /* The multiplier decays by one per interval spent un-ejected since the last return. */
        uint32_t mult = LD(&ep->ejections);
        if (mult > 0 && until > 0 && o->interval_ms > 0) {
            uint64_t dec = (now - until) / o->interval_ms;
            mult = dec >= mult ? 0 : mult - (uint32_t)dec;
        }
        mult++;
        uint64_t dur = SL_MIN(o->base_ejection_ms * mult, o->max_ejection_ms);
        ST(&ep->ejections, mult);
        ST(&ep->ejected_until, now + dur);
        ST(&ep->slow_start_until,
           p->cfg.slow_start.window_ms ? now + dur + p->cfg.slow_start.window_ms : 0);
        ST(&ep->consecutive, 0);
        ADD(&p->ejections, 1);
        SL_WARN(COMP, "upstream endpoint ejected", SL_LF_S("pool", p->name),
                SL_LF_S("endpoint", ep->addr), SL_LF_U("ejection_ms", dur),
                SL_LF_U("ejections", mult));
    }
    pthread_mutex_unlock(&p->eject_mu);
    pthread_rwlock_unlock(&p->set_lock);
}

sl_retry_decision_t sl_upstream_request_attempt_done(sl_upstream_request_t *req,
                                                     sl_retry_outcome_t o) {
    sl_upstream_pool_t *p = req->pool;
    sl_upstream_endpoint_t *ep = req->current;
    SL_ASSERT(ep && !req->pending);
    uint64_t now = now_ms(p);
    uint64_t dur = now > req->attempt_start_ms ? now - req->attempt_start_ms : 0;
    bool failure = sl_retry_outcome_is_failure(o);

    sl_breaker_state_t before = sl_breaker_state(ep->breaker);
    sl_breaker_state_t after =
        sl_breaker_record(ep->breaker, req->breaker_ticket, now, dur, failure);
    if (after == SL_BREAKER_OPEN && before != SL_BREAKER_OPEN)
        SL_WARN(COMP, "upstream breaker opened", SL_LF_S("pool", p->name),
                SL_LF_S("endpoint", ep->addr));
    else if (before == SL_BREAKER_HALF_OPEN && after == SL_BREAKER_CLOSED) {
        if (p->cfg.slow_start.window_ms)
            ST(&ep->slow_start_until, now + p->cfg.slow_start.window_ms);
        SL_INFO(COMP, "upstream breaker closed", SL_LF_S("pool", p->name),
                SL_LF_S("endpoint", ep->addr));
    }
    if (!failure)
        ST(&ep->consecutive, 0);
    else if (p->cfg.outlier.consecutive_failures > 0 &&
             ADD(&ep->consecutive, 1) >= p->cfg.outlier.consecutive_failures)
        maybe_eject(p, ep, now);

    SUB(&ep->in_flight, 1);
    SUB(&p->active, 1);
    ADD(&p->pending, 1);
    req->pending = true;
    req->current = NULL;

    sl_retry_decision_t d = sl_retry_decide(&p->cfg.retry, p->budget, req->attempts, o,
                                            req->idempotent, now, req->deadline_ms, rnd(p));
    if (d.verdict == SL_RETRY_YES) ADD(&p->retries, 1);
    if (d.verdict == SL_RETRY_NO_BUDGET) ADD(&p->budget_exhausted, 1);
    return d;
}

void sl_upstream_request_end(sl_upstream_request_t *req) {
    sl_upstream_pool_t *p = req->pool;
    if (!p) return;
    if (req->current) {
        sl_breaker_release(req->current->breaker, req->breaker_ticket);
        SUB(&req->current->in_flight, 1);
        SUB(&p->active, 1);
        req->current = NULL;
    }
    if (req->pending) SUB(&p->pending, 1);
    req->pending = false;
    for (uint32_t k = 0; k < req->attempts; k++)
        ep_unref(req->tried[k]);
    req->attempts = 0;
    req->pool = NULL;
}

const char *sl_upstream_endpoint_addr(const sl_upstream_endpoint_t *ep) {
    return ep->addr;
}

size_t sl_upstream_pool_endpoints(sl_upstream_pool_t *p, sl_upstream_endpoint_info_t *out,
                                  size_t cap) {
    uint64_t now = now_ms(p);
    pthread_rwlock_rdlock(&p->set_lock);
    size_t n = p->n;
    for (size_t k = 0; k < n && k < cap; k++) {
        sl_upstream_endpoint_t *ep = p->eps[k];
        sl_upstream_endpoint_info_t *i = &out[k];
        memcpy(i->addr, ep->addr, sizeof i->addr);
        i->in_flight = LD(&ep->in_flight);
        i->ejected = ep_ejected(ep, now);
        i->ejected_until_ms = i->ejected ? LD(&ep->ejected_until) : 0;
        i->ejections = LD(&ep->ejections);
        i->consecutive_failures = LD(&ep->consecutive);
        i->breaker = sl_breaker_state(ep->breaker);
        i->weight = ep_weight(p, ep, now);
    }
    pthread_rwlock_unlock(&p->set_lock);
    return n;
}

void sl_upstream_pool_stats(sl_upstream_pool_t *p, sl_upstream_stats_t *s) {
    *s = (sl_upstream_stats_t){
        .pending = LD(&p->pending),
        .active = LD(&p->active),
        .requests = LD(&p->requests),
        .retries = LD(&p->retries),
        .rejected_pending = LD(&p->rejected_pending),
        .rejected_concurrency = LD(&p->rejected_concurrency),
        .unavailable = LD(&p->unavailable),
        .budget_exhausted = LD(&p->budget_exhausted),
        .ejections = LD(&p->ejections),
    };
}
