/* The scheduler of one model version: Triton's dynamic batcher in front of N backend instances,
 * each executing on its own thread. Requests wait in one FIFO per priority level; an idle
 * instance thread forms the next batch under the scheduler's mutex, executes it without the
 * mutex, and hands the outputs to batch.c, which completes every request.
 *
 * Batch forming (Triton's rules): requests are taken in priority, then FIFO order while the
 * summed batch size stays <= max_batch_size; a request that does not fit is never split and
 * ends the batch, as does one whose shape cannot be concatenated with the first's. If preferred
 * sizes are configured and a prefix of the queue sums to one of them, the largest such prefix is
 * sent at once. Otherwise the batch goes when it is full (or cannot grow because the next request
 * does not fit), when max_queue_delay_us is 0, or when its OLDEST request has waited
 * max_queue_delay_us; until then the thread waits for more requests. Without dynamic batching, or
 * with max_batch_size 0, every request is its own batch.
 *
 * Queue policies: max_queue_size bounds the requests queued across all levels (the policy of
 * the request's level gives the bound); a request's timeout (its own when the policy allows an
 * override, else the policy's default) is checked while it is queued: with action reject it is
 * completed with SL_INFER_TIMEOUT, with action delay it moves to its level's delayed queue,
 * which is served only after every level's unexpired requests. When some policy has timeouts,
 * a timer thread expires requests even while every instance is busy, so a 504 is prompt.
 *
 * Threads: an instance thread waits only when it has nothing to do; a submit wakes one only
 * when one is idle (or is waiting out the batching delay and the queue just filled a batch),
 * after releasing the mutex, so the woken thread never blocks on it at once.
 *
 * Inline execution: without dynamic batching, a request submitted from an I/O thread runs on
 * that thread when an instance is idle, nothing is queued, and the model's recent executions
 * took under SL_SCHED_INLINE_MAX_NS each. Handing a request to an instance thread and its answer
 * back costs two context switches (measured: about a third of a small model's request time), more
 * than such a model's execution; a slower model never runs on an I/O thread, so it cannot stall
 * the other connections of that loop. The answer still reaches the front end through its loop,
 * after the submit returns.
 *
 * Statistics: this file records queue time (per request, when its batch is formed), executions
 * (batch size, requests, compute time) and the queue-depth gauge. A request's total time and
 * its success or failure are recorded by the caller when the request completes (the manager
 * wraps the request's done callback), not here. */
#include "inference/scheduler.h"

#include "core/common.h"
#include "core/log.h"
#include "inference/batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct node {
    sl_infer_request_t *req;
    uint64_t size;        /* batch items (>= 1) */
    uint64_t enq_ns;      /* when it was queued */
    uint64_t deadline_ns; /* 0: none (or already delayed) */
    uint32_t level;       /* 1..n_levels */
    struct node *prev, *next;
} node_t;

typedef struct queue {
    node_t *head, *tail;
} queue_t;

typedef struct instance {
    sl_sched_t *s;
    void *state;
    uint32_t index;
    pthread_t thread;
    bool started;
    bool busy; /* executing (on its thread, or inline on an I/O thread); mutex held to change */
    sl_infer_request_t **reqs; /* the batch being formed (capacity max_batch) */
} instance_t;

/* Executions shorter than this (exponentially weighted mean) may run inline on an I/O thread. */
#define SL_SCHED_INLINE_MAX_NS 50000u

struct sl_sched {
    const char *name, *version;
    const sl_model_config_t *cfg;
    const sluice_backend_iface_t *be;
    sl_model_stats_t *stats;

    bool batching;      /* dynamic batching with max_batch_size > 0 */
    uint32_t max_batch; /* items per batch (1 when not batching) */
    uint32_t n_levels;  /* priority levels, >= 1 */
    uint32_t default_level;
    uint64_t max_delay_ns;
    bool any_timeout; /* some level can time requests out: run the timer thread */

    pthread_mutex_t mu;
    pthread_cond_t work;       /* instance threads: requests arrived, or stop */
    pthread_cond_t timer;      /* the timer thread: an earlier deadline, or stop */
    queue_t *queues;           /* [n_levels + 1], index = level */
    queue_t *delayed;          /* [n_levels + 1] */
    uint32_t queued;           /* nodes in all queues */
    uint64_t next_deadline_ns; /* lower bound of queued deadlines, UINT64_MAX: none */
    node_t *free_nodes;
    bool stopping;
    uint32_t idle;         /* instance threads waiting with nothing to do */
    uint32_t delaying;     /* instance threads waiting out max_queue_delay */
    uint64_t queued_items; /* sum of the queued requests' batch sizes */
    uint64_t compute_ns;   /* weighted mean execution time; 0 until the first one */

    instance_t *inst;
    uint32_t n_inst;
    pthread_t timer_thread;
    bool timer_started;
};

/* ---- small helpers ---- */

static const sl_queue_policy_t *level_policy(const sl_sched_t *s, uint32_t level) {
    const sl_dynamic_batching_t *db = &s->cfg->batching;
    if (level <= SL_MODEL_MAX_PRIORITIES && db->has_priority_policy[level]) {
        return &db->priority_policy[level];
    }
    return &db->default_policy;
}

static void q_push(queue_t *q, node_t *n) {
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static void q_remove(queue_t *q, node_t *n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->prev = n->next = NULL;
}

/* A position in batch order: every level's queue (level 1 first), then every level's delayed
 * queue. */
typedef struct cursor {
    node_t *n; /* NULL: the end */
    uint32_t level;
    bool delayed;
} cursor_t;

static queue_t *cursor_queue(const sl_sched_t *s, const cursor_t *c) {
    return c->delayed ? &s->delayed[c->level] : &s->queues[c->level];
}

static void cursor_settle(const sl_sched_t *s, cursor_t *c) {
    while (!c->n) {
        if (c->level < s->n_levels) {
            c->level++;
        } else if (!c->delayed) {
            c->delayed = true;
            c->level = 1;
        } else {
            return;
        }
        c->n = cursor_queue(s, c)->head;
    }
}

static void cursor_first(const sl_sched_t *s, cursor_t *c) {
    c->delayed = false;
    c->level = 1;
    c->n = s->queues[1].head;
    cursor_settle(s, c);
}

static void cursor_next(const sl_sched_t *s, cursor_t *c) {
    c->n = c->n->next;
    cursor_settle(s, c);
}

static uint64_t us_to_ns(uint64_t us) {
    /* Saturates far beyond any real delay, so that now + ns cannot wrap. */
    return us >= (UINT64_C(1) << 40) ? (UINT64_C(1) << 62) : us * 1000u;
}

static void node_release(sl_sched_t *s, node_t *n) {
    n->req = NULL;
    n->next = s->free_nodes;
    s->free_nodes = n;
}

static void timespec_at(uint64_t mono_ns, struct timespec *ts) {
    ts->tv_sec = (time_t)(mono_ns / 1000000000u);
    ts->tv_nsec = (long)(mono_ns % 1000000000u);
}

/* Waits on cv until woken or until the monotonic time until_ns (UINT64_MAX: no limit). */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t until_ns) {
    if (until_ns == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts;
    timespec_at(until_ns, &ts);
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    SL_ASSERT(rc == 0 || rc == ETIMEDOUT);
}

/* ---- timeouts ---- */

/* Moves or unlinks every queued request whose deadline has passed (mutex held). Rejected ones
 * are chained through ->next onto *rejected, to be completed once the mutex is released. */
static void expire(sl_sched_t *s, uint64_t now, node_t **rejected) {
    if (now < s->next_deadline_ns) return;
    uint64_t next = UINT64_MAX;
    for (uint32_t l = 1; l <= s->n_levels; l++) {
        node_t *n = s->queues[l].head;
        while (n) {
            node_t *following = n->next;
            if (n->deadline_ns != 0 && n->deadline_ns <= now) {
                q_remove(&s->queues[l], n);
                n->deadline_ns = 0;
                if (level_policy(s, l)->timeout_action == SL_TIMEOUT_DELAY) {
                    q_push(&s->delayed[l], n);
                } else {
                    s->queued--;
                    s->queued_items -= n->size;
                    if (!n->req->warmup) sl_model_stats_queue_add(s->stats, -1);
                    n->next = *rejected;
                    *rejected = n;
                }
            } else if (n->deadline_ns != 0 && n->deadline_ns < next) {
                next = n->deadline_ns;
            }
            n = following;
        }
    }
    s->next_deadline_ns = next;
}

/* Completes the rejected requests (mutex NOT held), then returns their nodes. */
static void complete_rejected(sl_sched_t *s, node_t *rejected) {
    if (!rejected) return;
    node_t *n = rejected;
    while (n) {
        sl_infer_error_t err;
        sl_infer_error_set(&err, SL_INFER_TIMEOUT,
                           "request timed out in the queue of model '%s' version '%s'", s->name,
                           s->version);
        sl_infer_request_complete(n->req, NULL, &err);
        n->req = NULL;
        n = n->next;
    }
    pthread_mutex_lock(&s->mu);
    while (rejected) {
        node_t *next = rejected->next;
        node_release(s, rejected);
        rejected = next;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *timer_main(void *arg) {
    sl_sched_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!(s->stopping && s->queued == 0)) {
        node_t *rejected = NULL;
        expire(s, sl_now_ns(), &rejected);
        if (rejected) {
            pthread_mutex_unlock(&s->mu);
            complete_rejected(s, rejected);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        wait_until(&s->timer, &s->mu, s->next_deadline_ns);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- batch forming ---- */

/* Decides the next batch (mutex held). Returns the number of requests to take from the front
 * of the batch order (0: nothing to send now) and sets *wake_ns to when to look again. */
static uint32_t form_batch(sl_sched_t *s, uint64_t now, uint64_t *wake_ns) {
    *wake_ns = UINT64_MAX;
    cursor_t c;
    cursor_first(s, &c);
    if (!c.n) return 0;
    if (!s->batching) return 1;

    uint64_t total = 0, oldest = UINT64_MAX;
    uint32_t count = 0, best = 0;
    bool blocked = false;
    const sl_infer_request_t *first = c.n->req;
    for (; c.n; cursor_next(s, &c)) {
        /* A request that does not fit is never split, and one whose shape differs from the
         * first's (a -1 dim) cannot be concatenated with it: either starts the next batch. */
        if (total + c.n->size > s->max_batch ||
            (count > 0 && !sl_batch_can_join(s->cfg, first, c.n->req))) {
            blocked = true;
            break;
        }
        total += c.n->size;
        count++;
        if (c.n->enq_ns < oldest) oldest = c.n->enq_ns;
        for (uint32_t i = 0; i < s->cfg->batching.n_preferred; i++) {
            if (s->cfg->batching.preferred[i] == total) best = count;
        }
    }
    if (count == 0) return 1; /* alone larger than max_batch_size: validation rules it out */
    if (best > 0) return best;
    /* The batch cannot grow (full, or the next request does not fit), or must not wait. */
    if (blocked || total >= s->max_batch || s->max_delay_ns == 0 || s->stopping) return count;
    if (now - oldest >= s->max_delay_ns) return count;
    *wake_ns = oldest + s->max_delay_ns;
    return 0;
}

/* Unlinks the first count requests of the batch order into inst->reqs (mutex held); returns
 * the batch size in items. */
static uint64_t take_batch(sl_sched_t *s, instance_t *inst, uint32_t count, uint64_t now) {
    uint64_t items = 0;
    for (uint32_t i = 0; i < count; i++) {
        cursor_t c;
        cursor_first(s, &c);
        node_t *n = c.n;
        SL_ASSERT(n);
        q_remove(cursor_queue(s, &c), n);
        s->queued--;
        s->queued_items -= n->size;
        items += n->size;
        inst->reqs[i] = n->req;
        if (!n->req->warmup) {
            sl_model_stats_queue_add(s->stats, -1);
            sl_model_stats_queued(s->stats, now - n->enq_ns);
        }
        node_release(s, n);
    }
    return items;
}

static void execute(sl_sched_t *s, instance_t *inst, uint32_t n, uint64_t items) {
    uint64_t t0 = sl_now_ns();
    for (uint32_t i = 0; i < n; i++)
        inst->reqs[i]->t_compute_start_ns = t0;
    sluice_batch_t *b = sl_batch_new(s->cfg, s->name, s->version, inst->reqs, n);
    sluice_status_t *st = s->be->execute(inst->state, b);
    uint64_t t1 = sl_now_ns();
    /* The requests may be freed as soon as sl_batch_finish completes them: stamp them first. */
    for (uint32_t i = 0; i < n; i++)
        inst->reqs[i]->t_compute_end_ns = t1;
    /* Recorded before the answers go out, so that a client that got its answer and then reads
     * the statistics finds its execution counted. */
    /* Warm-up batches (run before the version is READY, never mixed with clients') are kept
     * out of the statistics: a user's first look must show only their own requests. */
    if (st == NULL && !inst->reqs[0]->warmup)
        sl_model_stats_execution(s->stats, (uint32_t)items, n, t1 - t0);
    uint64_t mean = __atomic_load_n(&s->compute_ns, __ATOMIC_RELAXED);
    mean = mean ? (mean * 7 + (t1 - t0)) / 8 : t1 - t0;
    __atomic_store_n(&s->compute_ns, mean, __ATOMIC_RELAXED);
    sl_batch_finish(b, st);
    sl_batch_free(b);
}

static void *instance_main(void *arg) {
    instance_t *inst = arg;
    sl_sched_t *s = inst->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        uint64_t now = sl_now_ns();
        node_t *rejected = NULL;
        expire(s, now, &rejected);
        if (rejected) {
            pthread_mutex_unlock(&s->mu);
            complete_rejected(s, rejected);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        uint64_t wake = UINT64_MAX;
        /* An instance claimed by an inline execution takes nothing until it is back. */
        uint32_t count = inst->busy ? 0 : form_batch(s, now, &wake);
        if (count == 0) {
            if (s->stopping && s->queued == 0 && !inst->busy) break;
            /* Deadlines are the timer thread's: no need to wake every instance for them. */
            uint32_t *waiting = wake == UINT64_MAX ? &s->idle : &s->delaying;
            (*waiting)++;
            wait_until(&s->work, &s->mu, wake);
            (*waiting)--;
            continue;
        }
        uint64_t items = take_batch(s, inst, count, now);
        inst->busy = true;
        /* Another idle instance may serve what is left. */
        bool more = s->queued > 0 && s->idle > 0;
        pthread_mutex_unlock(&s->mu);
        if (more) pthread_cond_signal(&s->work);
        execute(s, inst, count, items);
        pthread_mutex_lock(&s->mu);
        inst->busy = false;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public API ---- */

static void stop_and_join(sl_sched_t *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->timer);
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < s->n_inst; i++) {
        if (s->inst[i].started) pthread_join(s->inst[i].thread, NULL);
    }
    if (s->timer_started) {
        /* The instances have drained the queues; wake the timer to see it. */
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->timer);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer_thread, NULL);
    }
}

static void sched_destroy(sl_sched_t *s) {
    SL_ASSERT(s->queued == 0);
    while (s->free_nodes) {
        node_t *n = s->free_nodes;
        s->free_nodes = n->next;
        free(n);
    }
    for (uint32_t i = 0; i < s->n_inst; i++)
        free(s->inst[i].reqs);
    free(s->inst);
    free(s->queues);
    free(s->delayed);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->timer);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

sl_sched_t *sl_sched_new(const sl_sched_cfg_t *c, char *err, size_t err_len) {
    SL_ASSERT(c->n_instances >= 1 && c->be && c->be->execute && c->cfg && c->stats);
    const sl_model_config_t *cfg = c->cfg;
    const sl_dynamic_batching_t *db = &cfg->batching;
    sl_sched_t *s = sl_calloc(1, sizeof *s);
    s->name = c->model_name;
    s->version = c->version;
    s->cfg = cfg;
    s->be = c->be;
    s->stats = c->stats;
    s->batching = db->enabled && cfg->max_batch_size > 0;
    s->max_batch = s->batching ? cfg->max_batch_size : 1;
    s->n_levels = db->priority_levels ? SL_MIN(db->priority_levels, SL_MODEL_MAX_PRIORITIES) : 1;
    s->default_level = db->default_priority_level;
    if (s->default_level < 1 || s->default_level > s->n_levels) s->default_level = 1;
    s->max_delay_ns = us_to_ns(db->max_queue_delay_us);
    for (uint32_t l = 1; l <= s->n_levels; l++) {
        const sl_queue_policy_t *p = level_policy(s, l);
        if (p->default_timeout_us || p->allow_timeout_override) s->any_timeout = true;
    }
    s->queues = sl_calloc(s->n_levels + 1, sizeof *s->queues);
    s->delayed = sl_calloc(s->n_levels + 1, sizeof *s->delayed);
    s->next_deadline_ns = UINT64_MAX;

    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->work, &ca);
    pthread_cond_init(&s->timer, &ca);
    pthread_condattr_destroy(&ca);

    s->n_inst = c->n_instances;
    s->inst = sl_calloc(s->n_inst, sizeof *s->inst);
    for (uint32_t i = 0; i < s->n_inst; i++) {
        instance_t *in = &s->inst[i];
        in->s = s;
        in->state = c->instances[i];
        in->index = i;
        in->reqs = sl_calloc(s->max_batch, sizeof *in->reqs);
    }
    int rc = 0;
    for (uint32_t i = 0; i < s->n_inst && rc == 0; i++) {
        rc = pthread_create(&s->inst[i].thread, NULL, instance_main, &s->inst[i]);
        s->inst[i].started = rc == 0;
    }
    if (rc == 0 && s->any_timeout) {
        rc = pthread_create(&s->timer_thread, NULL, timer_main, s);
        s->timer_started = rc == 0;
    }
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the scheduler threads of model '%s': %s", s->name,
                 strerror(rc));
        stop_and_join(s);
        sched_destroy(s);
        return NULL;
    }
    return s;
}

/* An idle instance a request may run on inline (mutex held), or NULL: see the file comment. */
static instance_t *inline_instance(sl_sched_t *s) {
    if (s->batching || s->queued > 0 || s->stopping || !sl_loop_current()) return NULL;
    uint64_t mean = __atomic_load_n(&s->compute_ns, __ATOMIC_RELAXED);
    if (mean == 0 || mean >= SL_SCHED_INLINE_MAX_NS) return NULL;
    for (uint32_t i = 0; i < s->n_inst; i++) {
        if (!s->inst[i].busy) return &s->inst[i];
    }
    return NULL;
}

/* Executes req on inst (claimed: busy) on the calling I/O thread, then gives inst back. */
static void run_inline(sl_sched_t *s, instance_t *inst, sl_infer_request_t *req) {
    uint64_t now = sl_now_ns();
    req->t_queued_ns = now;
    sl_model_stats_queued(s->stats, 0);
    sl_infer_request_t *reqs[1] = {req};
    sl_infer_request_t **saved = inst->reqs;
    inst->reqs = reqs;
    uint64_t items = sl_batch_request_size(s->cfg, req);
    execute(s, inst, 1, items ? items : 1);
    inst->reqs = saved;
    pthread_mutex_lock(&s->mu);
    inst->busy = false;
    /* Requests may have queued meanwhile for this instance's thread. */
    bool wake = s->queued > 0;
    pthread_mutex_unlock(&s->mu);
    if (wake) pthread_cond_broadcast(&s->work);
}

void sl_sched_submit(sl_sched_t *s, sl_infer_request_t *req) {
    sl_infer_error_t err;
    uint32_t level = req->priority;
    /* As Triton: 0, or a level the model does not have, means the default level. */
    if (level == 0 || level > s->n_levels) level = s->default_level;
    const sl_queue_policy_t *p = level_policy(s, level);
    /* Items, for the statistics; batches of a non-batching scheduler hold one request. */
    uint64_t size = sl_batch_request_size(s->cfg, req);
    if (size == 0) size = 1;

    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        sl_infer_error_set(&err, SL_INFER_UNAVAILABLE, "model '%s' version '%s' is unloading",
                           s->name, s->version);
        sl_infer_request_complete(req, NULL, &err);
        return;
    }
    if (p->max_queue_size && s->queued >= p->max_queue_size) {
        pthread_mutex_unlock(&s->mu);
        sl_infer_error_set(&err, SL_INFER_OVERLOADED, "queue of model '%s' is full (%u requests)",
                           s->name, p->max_queue_size);
        sl_infer_request_complete(req, NULL, &err);
        return;
    }
    instance_t *inl = inline_instance(s);
    if (inl) {
        inl->busy = true;
        pthread_mutex_unlock(&s->mu);
        run_inline(s, inl, req);
        return;
    }
    node_t *n = s->free_nodes;
    if (n)
        s->free_nodes = n->next;
    else
        n = sl_malloc(sizeof *n);
    uint64_t now = sl_now_ns();
    req->t_queued_ns = now;
    n->req = req;
    n->size = size;
    n->enq_ns = now;
    n->level = level;
    uint64_t timeout_us =
        p->allow_timeout_override && req->timeout_us ? req->timeout_us : p->default_timeout_us;
    n->deadline_ns = timeout_us ? now + us_to_ns(timeout_us) : 0;
    q_push(&s->queues[level], n);
    s->queued++;
    s->queued_items += size;
    if (!req->warmup) sl_model_stats_queue_add(s->stats, 1);
    if (n->deadline_ns && n->deadline_ns < s->next_deadline_ns) {
        s->next_deadline_ns = n->deadline_ns;
        pthread_cond_signal(&s->timer);
    }
    /* Wake an idle thread; one waiting out the delay only when a batch may now be complete
     * (it wakes on its own when the delay ends). Busy threads look at the queue when done. */
    bool wake = s->idle > 0 || (s->delaying > 0 &&
                                (s->queued_items >= s->max_batch || s->cfg->batching.n_preferred));
    pthread_mutex_unlock(&s->mu);
    if (wake) pthread_cond_signal(&s->work);
}

uint32_t sl_sched_queue_depth(sl_sched_t *s) {
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->queued;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void sl_sched_free(sl_sched_t *s) {
    if (!s) return;
    stop_and_join(s);
    SL_DEBUG("inference", "scheduler stopped", SL_LF_S("model", s->name),
             SL_LF_S("version", s->version));
    sched_destroy(s);
}
