/* Snapshots (see snapshot.h): a mutex guarding the current object and its references, and an
 * atomic generation that lets per-thread views skip the mutex until something new is published.
 * Used by the gateway's keys and traffic holders; knows nothing of what it publishes. */
#include "core/snapshot.h"

#include "core/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct sl_snapshot {
    pthread_mutex_t lock;
    void *cur; /* guarded by lock; one reference, the holder's */
    /* Bumped under lock on every publish; starts at 1 so a zeroed view (gen 0) always acquires.
     * Written under the lock so (cur, gen) read together under it are a consistent pair. */
    _Atomic uint64_t gen;
    sl_snapshot_ref_cb ref;
    sl_snapshot_unref_cb unref;
};

sl_snapshot_t *sl_snapshot_new(sl_snapshot_ref_cb ref, sl_snapshot_unref_cb unref, void *initial) {
    SL_ASSERT(ref && unref);
    sl_snapshot_t *s = sl_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->cur = initial;
    atomic_init(&s->gen, 1);
    s->ref = ref;
    s->unref = unref;
    return s;
}

void sl_snapshot_free(sl_snapshot_t *s) {
    if (!s) return;
    if (s->cur) s->unref(s->cur);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void sl_snapshot_publish(sl_snapshot_t *s, void *obj) {
    pthread_mutex_lock(&s->lock);
    void *old = s->cur;
    s->cur = obj;
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    if (old) s->unref(old); /* outside the lock: freeing a large object takes a while */
}

/* A new reference to the current object and the generation it belongs to. */
static void *acquire(sl_snapshot_t *s, uint64_t *gen) {
    pthread_mutex_lock(&s->lock);
    void *obj = s->cur;
    if (obj) s->ref(obj);
    *gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return obj;
}

void *sl_snapshot_acquire(sl_snapshot_t *s) {
    uint64_t gen;
    return acquire(s, &gen);
}

void *sl_snapshot_view_get(sl_snapshot_t *s, sl_snapshot_view_t *v) {
    if (atomic_load_explicit(&s->gen, memory_order_acquire) == v->gen) return v->obj;
    SL_ASSERT(!v->unref || v->unref == s->unref); /* a view serves one holder */
    void *old = v->obj;
    v->obj = acquire(s, &v->gen);
    v->unref = s->unref;
    if (old) v->unref(old);
    return v->obj;
}

void sl_snapshot_view_release(sl_snapshot_view_t *v) {
    if (v->obj) v->unref(v->obj);
    *v = (sl_snapshot_view_t){0};
}
