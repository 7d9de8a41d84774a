/* Intra-op threads: a small persistent pool per run context (created by sl_run_new when the
 * model's intra_op_threads > 1) that kernels use through sl_par_for to split the outer loop of
 * a large operation into equal static chunks. The calling thread takes chunks too, so a pool
 * of T threads has T - 1 workers. Static chunking (never work stealing) keeps each element's
 * arithmetic on one thread in a fixed order: results are bitwise the same for any thread count.
 * A job allocates nothing, so warm runs stay free of heap allocation. */
#include "engine/model_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct sl_pool {
    int n_workers;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    uint64_t gen; /* bumped per job: workers wait for a new one */
    int pending;  /* workers that have not finished the current job */
    bool stop;
    /* the current job */
    sl_par_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
    atomic_int next; /* next chunk to take */
};

static void run_chunks(sl_pool_t *p) {
    for (;;) {
        int c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (c >= p->chunks) return;
        int64_t b = p->n * c / p->chunks, e = p->n * (c + 1) / p->chunks;
        if (e > b) p->fn(p->ctx, b, e);
    }
}

static void *worker(void *arg) {
    sl_pool_t *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->cv_start, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sl_pool_t *sl_pool_new(int threads) {
    if (threads < 2) return NULL;
    sl_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->th = calloc((size_t)threads, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->next, 0);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&p->th[i], NULL, worker, p) != 0) break;
        p->n_workers++;
    }
    if (p->n_workers == 0) {
        sl_pool_free(p);
        return NULL;
    }
    return p;
}

void sl_pool_free(sl_pool_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    free(p->th);
    free(p);
}

int sl_pool_threads(const sl_pool_t *p) {
    return p ? p->n_workers + 1 : 1;
}

void sl_par_for(const sl_kctx_t *k, int64_t n, int64_t grain, sl_par_fn fn, void *ctx) {
    sl_pool_t *p = k ? k->pool : NULL;
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    int t = sl_pool_threads(p);
    if (chunks > t) chunks = t;
    if (!p || chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunks = (int)chunks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->pending = p->n_workers;
    p->gen++;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
