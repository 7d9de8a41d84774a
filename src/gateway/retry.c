/* Retry policy, backoff, deadlines and the retry budget (see retry.h). The budget counts
 * requests and retries in one-second buckets over a sliding window with running totals, so a
 * check is O(1) amortised; one mutex per budget guards the buckets. */
#include "gateway/retry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

bool sl_retry_outcome_is_failure(sl_retry_outcome_t o) {
    switch (o) {
    case SL_RETRY_OUTCOME_CONNECT_FAILURE:
    case SL_RETRY_OUTCOME_UNAVAILABLE:
    case SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE:
    case SL_RETRY_OUTCOME_PER_TRY_TIMEOUT:
    case SL_RETRY_OUTCOME_FAILED_AFTER_RESPONSE:
    case SL_RETRY_OUTCOME_SERVER_ERROR:
        return true;
    case SL_RETRY_OUTCOME_OK:
    case SL_RETRY_OUTCOME_RATE_LIMITED:
    case SL_RETRY_OUTCOME_CLIENT_ERROR:
        return false;
    }
    return false;
}

bool sl_retry_outcome_is_retriable(sl_retry_outcome_t o, bool idempotent) {
    switch (o) {
    case SL_RETRY_OUTCOME_CONNECT_FAILURE:
        return true;
    case SL_RETRY_OUTCOME_UNAVAILABLE:
    case SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE:
    case SL_RETRY_OUTCOME_PER_TRY_TIMEOUT:
        return idempotent;
    default:
        return false;
    }
}

const char *sl_retry_outcome_name(sl_retry_outcome_t o) {
    switch (o) {
    case SL_RETRY_OUTCOME_OK:
        return "ok";
    case SL_RETRY_OUTCOME_CONNECT_FAILURE:
        return "connect_failure";
    case SL_RETRY_OUTCOME_UNAVAILABLE:
        return "unavailable";
    case SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE:
        return "reset_before_response";
    case SL_RETRY_OUTCOME_PER_TRY_TIMEOUT:
        return "per_try_timeout";
    case SL_RETRY_OUTCOME_FAILED_AFTER_RESPONSE:
        return "failed_after_response";
    case SL_RETRY_OUTCOME_SERVER_ERROR:
        return "server_error";
    case SL_RETRY_OUTCOME_RATE_LIMITED:
        return "rate_limited";
    case SL_RETRY_OUTCOME_CLIENT_ERROR:
        return "client_error";
    }
    return "unknown";
}

void sl_retry_policy_default(sl_retry_policy_t *p) {
    *p = (sl_retry_policy_t){
        .max_attempts = 3,
        .backoff_base_ms = 25,
        .backoff_cap_ms = 250,
        .per_try_timeout_ms = 0,
        .timeout_ms = 15000,
    };
}

int sl_retry_policy_validate(const sl_retry_policy_t *p, sl_buf_t *err) {
    const char *bad = NULL;
    if (p->max_attempts < 1 || p->max_attempts > SL_RETRY_MAX_ATTEMPTS)
        bad = "max_attempts must be 1..5";
    else if (p->backoff_base_ms == 0)
        bad = "backoff_base_ms must be > 0";
    else if (p->backoff_cap_ms < p->backoff_base_ms)
        bad = "backoff_cap_ms must be >= backoff_base_ms";
    else if (p->timeout_ms == 0)
        bad = "timeout_ms must be > 0";
    if (!bad) return 0;
    sl_buf_printf(err, "retry policy: %s", bad);
    return SL_EINVAL;
}

uint64_t sl_retry_backoff_ms(const sl_retry_policy_t *p, uint32_t retry_index, uint64_t rnd) {
    uint64_t ceil = p->backoff_base_ms;
    /* Doubling stops at the cap, so neither the shift nor the product can overflow. */
    for (uint32_t i = 0; i < retry_index && ceil < p->backoff_cap_ms; i++)
        ceil *= 2;
    ceil = SL_MIN(ceil, (uint64_t)p->backoff_cap_ms);
    return rnd % (ceil + 1); /* the modulo bias is below 2^-50 for ceilings under 2^14 */
}

uint64_t sl_retry_deadline_ms(const sl_retry_policy_t *p, uint64_t now_ms,
                              uint64_t client_deadline_ms) {
    uint64_t d = now_ms + p->timeout_ms;
    if (client_deadline_ms != 0 && client_deadline_ms < d) d = client_deadline_ms;
    return d;
}

int sl_retry_try_timeout_ms(const sl_retry_policy_t *p, uint64_t deadline_ms, uint64_t now_ms,
                            uint32_t *timeout_ms) {
    if (now_ms >= deadline_ms) return SL_ETIMEOUT;
    uint64_t left = deadline_ms - now_ms;
    if (p->per_try_timeout_ms != 0) left = SL_MIN(left, (uint64_t)p->per_try_timeout_ms);
    *timeout_ms = (uint32_t)SL_MIN(left, (uint64_t)UINT32_MAX);
    return 0;
}

/* ---- retry budget ---- */

typedef struct {
    uint64_t sec;
    uint64_t requests, retries;
} rb_bucket_t;

struct sl_retry_budget {
    pthread_mutex_t mu;
    sl_retry_budget_config_t cfg;
    rb_bucket_t *buckets; /* window_s of them, indexed by second % window_s */
    uint64_t last_sec;
    uint64_t requests, retries; /* totals over the window */
};

void sl_retry_budget_config_default(sl_retry_budget_config_t *c) {
    *c = (sl_retry_budget_config_t){.ratio = 0.2, .min_retries_per_sec = 3, .window_s = 10};
}

int sl_retry_budget_config_validate(const sl_retry_budget_config_t *c, sl_buf_t *err) {
    const char *bad = NULL;
    if (!(c->ratio >= 0.0 && c->ratio <= 1.0))
        bad = "ratio must be in [0, 1]";
    else if (c->window_s < 1 || c->window_s > 3600)
        bad = "window_s must be 1..3600";
    else if (c->min_retries_per_sec > 1000000)
        bad = "min_retries_per_sec must be at most 1000000";
    if (!bad) return 0;
    sl_buf_printf(err, "retry budget: %s", bad);
    return SL_EINVAL;
}

sl_retry_budget_t *sl_retry_budget_new(const sl_retry_budget_config_t *c) {
    sl_buf_t why = SL_BUF_INIT;
    int rc = sl_retry_budget_config_validate(c, &why);
    sl_buf_free(&why);
    SL_ASSERT(rc == 0);
    sl_retry_budget_t *b = sl_calloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->cfg = *c;
    b->buckets = sl_calloc(c->window_s, sizeof(rb_bucket_t));
    return b;
}

void sl_retry_budget_free(sl_retry_budget_t *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->buckets);
    free(b);
}

/* Moves the window to now's second, evicting buckets that fell out (under the mutex). */
static rb_bucket_t *advance(sl_retry_budget_t *b, uint64_t now_ms) {
    uint32_t n = b->cfg.window_s;
    uint64_t sec = now_ms / 1000;
    if (sec > b->last_sec) {
        uint64_t steps = SL_MIN(sec - b->last_sec, (uint64_t)n);
        for (uint64_t s = sec - steps + 1; s <= sec; s++) {
            rb_bucket_t *k = &b->buckets[s % n];
            b->requests -= k->requests;
            b->retries -= k->retries;
            *k = (rb_bucket_t){.sec = s};
        }
        b->last_sec = sec;
    }
    return &b->buckets[b->last_sec % n];
}

void sl_retry_budget_on_request(sl_retry_budget_t *b, uint64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    advance(b, now_ms)->requests++;
    b->requests++;
    pthread_mutex_unlock(&b->mu);
}

bool sl_retry_budget_try_withdraw(sl_retry_budget_t *b, uint64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    rb_bucket_t *k = advance(b, now_ms);
    double allowed = b->cfg.ratio * (double)b->requests +
                     (double)b->cfg.min_retries_per_sec * (double)b->cfg.window_s;
    bool ok = (double)(b->retries + 1) <= allowed;
    if (ok) {
        k->retries++;
        b->retries++;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void sl_retry_budget_counts(sl_retry_budget_t *b, uint64_t now_ms, uint64_t *requests,
                            uint64_t *retries) {
    pthread_mutex_lock(&b->mu);
    advance(b, now_ms);
    *requests = b->requests;
    *retries = b->retries;
    pthread_mutex_unlock(&b->mu);
}

/* ---- decision ---- */

sl_retry_decision_t sl_retry_decide(const sl_retry_policy_t *p, sl_retry_budget_t *budget,
                                    uint32_t attempts_done, sl_retry_outcome_t o, bool idempotent,
                                    uint64_t now_ms, uint64_t deadline_ms, uint64_t rnd) {
    SL_ASSERT(attempts_done >= 1);
    sl_retry_decision_t d = {.verdict = SL_RETRY_YES, .backoff_ms = 0};
    if (!sl_retry_outcome_is_failure(o) && o != SL_RETRY_OUTCOME_RATE_LIMITED) {
        d.verdict = SL_RETRY_NO_SUCCESS;
        return d;
    }
    if (!sl_retry_outcome_is_retriable(o, idempotent)) {
        d.verdict = SL_RETRY_NO_NOT_RETRIABLE;
        return d;
    }
    if (attempts_done >= p->max_attempts) {
        d.verdict = SL_RETRY_NO_ATTEMPTS;
        return d;
    }
    d.backoff_ms = sl_retry_backoff_ms(p, attempts_done - 1, rnd);
    if (now_ms + d.backoff_ms >= deadline_ms) {
        d.verdict = SL_RETRY_NO_DEADLINE;
        return d;
    }
    if (budget && !sl_retry_budget_try_withdraw(budget, now_ms)) {
        d.verdict = SL_RETRY_NO_BUDGET;
        return d;
    }
    return d;
}

const char *sl_retry_verdict_name(sl_retry_verdict_t v) {
    switch (v) {
    case SL_RETRY_YES:
        return "retry";
    case SL_RETRY_NO_SUCCESS:
        return "success";
    case SL_RETRY_NO_NOT_RETRIABLE:
        return "not_retriable";
    case SL_RETRY_NO_ATTEMPTS:
        return "attempts";
    case SL_RETRY_NO_DEADLINE:
        return "deadline";
    case SL_RETRY_NO_BUDGET:
        return "budget";
    }
    return "unknown";
}
