/* Snapshots: one holder publishing an immutable, reference-counted object (a keys table, a
 * traffic policy set, a parsed config) to many reader threads, with a per-thread view whose
 * steady-state cost is one atomic load. The object type is opaque here: the holder only calls
 * the ref/unref functions it was created with, so core knows nothing of what it publishes.
 *
 * Why not a plain atomic pointer plus refcounts: a reader loads the pointer, the publisher drops
 * the last reference, and the reader's ref then touches freed memory. The holder therefore hands
 * out references under a short lock, and bumps a generation counter on every publish; a view
 * compares that counter with the one it cached and re-acquires only when it changed.
 *
 *   sl_snapshot_t *snap = sl_snapshot_new(table_ref, table_unref, table);   // table moves in
 *   ...on each I/O thread:
 *   sl_snapshot_view_t v = {0};
 *   const table_t *t = sl_snapshot_view_get(snap, &v);                      // borrowed from v
 *   ...at thread exit:
 *   sl_snapshot_view_release(&v);
 *   ...on reload (any thread):
 *   sl_snapshot_publish(snap, new_table);                                   // new_table moves in
 *
 * Threads: publish, acquire and view_get may be called from any number of threads at once on
 * the same holder. A view belongs to one thread at a time (it is not locked). The published
 * objects must be immutable, or at least safe to read from many threads, for as long as any
 * reference to them is held. */
#ifndef SL_SNAPSHOT_H
#define SL_SNAPSHOT_H

#include <stdint.h>

/* Take and drop one reference to obj. Both must be safe to call from any thread (an atomic
 * count); unref frees obj when it drops the last reference. The holder never passes NULL. */
typedef void (*sl_snapshot_ref_cb)(void *obj);
typedef void (*sl_snapshot_unref_cb)(void *obj);

typedef struct sl_snapshot sl_snapshot_t;

/* Creates a holder publishing initial (the caller's reference moves into the holder; NULL
 * publishes "nothing yet", which readers see as NULL). ref and unref must not be NULL. Free
 * with sl_snapshot_free. */
sl_snapshot_t *sl_snapshot_new(sl_snapshot_ref_cb ref, sl_snapshot_unref_cb unref, void *initial);

/* Drops the holder's reference to the current object and frees the holder (NULL is ignored).
 * No other thread may use the holder any more; views keep their own references and must still
 * be released with sl_snapshot_view_release (which needs no holder). */
void sl_snapshot_free(sl_snapshot_t *s);

/* Publishes obj (the caller's reference moves into the holder; NULL publishes "nothing") and
 * bumps the generation, so every view re-acquires on its next get. The holder's reference to
 * the previous object is dropped after the lock is released (freeing a large object may take a
 * while); readers still using it keep it alive through their own references. */
void sl_snapshot_publish(sl_snapshot_t *s, void *obj);

/* A new reference to the current object, or NULL when nothing is published; the caller drops
 * it with the object's unref function. Takes the holder's lock briefly. */
void *sl_snapshot_acquire(sl_snapshot_t *s);

/* One reader thread's cached reference; zero-initialise it ({0}). Fields are private. */
typedef struct sl_snapshot_view {
    void *obj;                  /* one reference, owned by the view (NULL: none held) */
    uint64_t gen;               /* the holder's generation when obj was acquired; 0: never */
    sl_snapshot_unref_cb unref; /* the holder's, recorded so release needs no holder */
} sl_snapshot_view_t;

/* The current object for this view (NULL when nothing is published). When the holder's
 * generation equals the cached one this is one atomic load and no lock; otherwise the view
 * takes a reference to the current object under the lock and drops its old one. The pointer is
 * borrowed from the view: it stays valid until the next sl_snapshot_view_get or
 * sl_snapshot_view_release on the same view, so a caller that keeps it longer takes its own
 * reference. A view must always be used with the same holder. */
void *sl_snapshot_view_get(sl_snapshot_t *s, sl_snapshot_view_t *v);

/* Drops the view's reference (if any) and resets the view to {0}, so it can be used again. It
 * does not touch the holder, which may already be freed. */
void sl_snapshot_view_release(sl_snapshot_view_t *v);

#endif
