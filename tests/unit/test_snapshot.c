/* Unit tests for core/snapshot: publish and acquire, views that re-acquire only when a new
 * generation was published, references that keep a replaced object alive, NULL objects, and
 * four reader threads while 200 objects are published (run under ASan for use-after-free and
 * leaks; a live-object count checks that every object is freed exactly once). */
#include "core/common.h"
#include "core/snapshot.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- a reference-counted test object -------------------------------------------------------- */

#define MAGIC 0x5EA15EA1u

typedef struct obj {
    _Atomic int refs;
    unsigned magic; /* overwritten on free, so a stale read is seen even without ASan */
    int id;
} obj_t;

static atomic_int live;       /* objects allocated and not yet freed */
static atomic_long ref_calls; /* calls of obj_ref, to see when a view re-acquires */

static obj_t *obj_new(int id) {
    obj_t *o = malloc(sizeof *o);
    assert_non_null(o);
    atomic_init(&o->refs, 1);
    o->magic = MAGIC;
    o->id = id;
    atomic_fetch_add(&live, 1);
    return o;
}

/* The callbacks run on reader threads too, where a cmocka assert cannot unwind: abort. */
static void obj_ref(void *p) {
    obj_t *o = p;
    if (!o || o->magic != MAGIC) abort();
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    atomic_fetch_add(&ref_calls, 1);
}

static void obj_unref(void *p) {
    obj_t *o = p;
    if (!o || o->magic != MAGIC) abort();
    int before = atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel);
    if (before <= 0) abort();
    if (before == 1) {
        o->magic = 0;
        free(o);
        atomic_fetch_sub(&live, 1);
    }
}

static int refs_of(obj_t *o) {
    return atomic_load(&o->refs);
}

static int setup(void **state) {
    atomic_store(&live, 0);
    atomic_store(&ref_calls, 0);
    return 0;
}

static int teardown(void **state) {
    assert_int_equal(atomic_load(&live), 0); /* every object freed exactly once */
    return 0;
}

/* ---- single-threaded behaviour ------------------------------------------------------------- */

static void test_publish_and_acquire(void **state) {
    obj_t *a = obj_new(1);
    sl_snapshot_t *s = sl_snapshot_new(obj_ref, obj_unref, a);
    assert_int_equal(refs_of(a), 1); /* the caller's reference moved in, no extra one */

    obj_t *got = sl_snapshot_acquire(s);
    assert_ptr_equal(got, a);
    assert_int_equal(refs_of(a), 2);
    obj_unref(got);

    obj_t *b = obj_new(2);
    sl_snapshot_publish(s, b);
    assert_int_equal(atomic_load(&live), 1); /* a had only the holder's reference: freed */
    got = sl_snapshot_acquire(s);
    assert_ptr_equal(got, b);
    assert_int_equal(got->id, 2);
    obj_unref(got);

    sl_snapshot_free(s);
    assert_int_equal(atomic_load(&live), 0);
}

static void test_view_refreshes_only_on_new_generation(void **state) {
    obj_t *a = obj_new(1);
    sl_snapshot_t *s = sl_snapshot_new(obj_ref, obj_unref, a);
    sl_snapshot_view_t v = {0};

    assert_ptr_equal(sl_snapshot_view_get(s, &v), a); /* a zeroed view always acquires */
    assert_int_equal(atomic_load(&ref_calls), 1);
    assert_int_equal(refs_of(a), 2);
    for (int i = 0; i < 100; i++)
        assert_ptr_equal(sl_snapshot_view_get(s, &v), a);
    assert_int_equal(atomic_load(&ref_calls), 1); /* steady state: no new reference */
    assert_int_equal(refs_of(a), 2);

    /* Republishing the same object is still a new generation: the view re-acquires once. */
    obj_ref(a);
    sl_snapshot_publish(s, a);
    assert_ptr_equal(sl_snapshot_view_get(s, &v), a);
    assert_ptr_equal(sl_snapshot_view_get(s, &v), a);
    assert_int_equal(atomic_load(&ref_calls), 3); /* ours plus the view's one re-acquire */
    assert_int_equal(refs_of(a), 2);              /* the view dropped its old reference */

    obj_t *b = obj_new(2);
    sl_snapshot_publish(s, b);
    assert_int_equal(atomic_load(&live), 2); /* the view still holds a */
    obj_t *seen = sl_snapshot_view_get(s, &v);
    assert_ptr_equal(seen, b);
    assert_int_equal(seen->id, 2);
    assert_int_equal(atomic_load(&live), 1); /* the view's move to b dropped the last ref to a */

    sl_snapshot_view_release(&v);
    assert_null(v.obj);
    assert_int_equal(refs_of(b), 1);
    sl_snapshot_view_release(&v); /* a released view may be released again */
    sl_snapshot_free(s);
}

static void test_references_keep_old_object_alive(void **state) {
    obj_t *a = obj_new(1);
    sl_snapshot_t *s = sl_snapshot_new(obj_ref, obj_unref, a);
    sl_snapshot_view_t v = {0};
    obj_t *mine = sl_snapshot_acquire(s);
    assert_ptr_equal(sl_snapshot_view_get(s, &v), a);

    sl_snapshot_publish(s, obj_new(2));
    sl_snapshot_publish(s, obj_new(3));
    /* Two publishes later a is still alive: my reference and the view's keep it. */
    assert_int_equal(atomic_load(&live), 2);
    assert_int_equal(mine->magic, MAGIC);
    assert_int_equal(mine->id, 1);
    assert_int_equal(refs_of(a), 2);

    /* The holder may go first: references outlive it, and a view releases without it. */
    sl_snapshot_free(s);
    assert_int_equal(atomic_load(&live), 1);
    assert_int_equal(((obj_t *)v.obj)->id, 1);
    sl_snapshot_view_release(&v);
    assert_int_equal(atomic_load(&live), 1);
    obj_unref(mine);
    assert_int_equal(atomic_load(&live), 0);
}

static void test_null_objects(void **state) {
    sl_snapshot_free(NULL);
    sl_snapshot_t *s = sl_snapshot_new(obj_ref, obj_unref, NULL);
    sl_snapshot_view_t v = {0};
    assert_null(sl_snapshot_acquire(s));
    assert_null(sl_snapshot_view_get(s, &v));
    assert_null(sl_snapshot_view_get(s, &v));

    obj_t *a = obj_new(1);
    sl_snapshot_publish(s, a);
    assert_ptr_equal(sl_snapshot_view_get(s, &v), a);

    /* Publishing NULL withdraws the object: readers see NULL, and a is freed once the view
     * moves on. */
    sl_snapshot_publish(s, NULL);
    assert_null(sl_snapshot_acquire(s));
    assert_int_equal(atomic_load(&live), 1);
    assert_null(sl_snapshot_view_get(s, &v));
    assert_int_equal(atomic_load(&live), 0);
    assert_int_equal(atomic_load(&ref_calls), 1); /* the holder never refs NULL */

    sl_snapshot_view_release(&v);
    sl_snapshot_free(s);
}

/* ---- readers while publishing -------------------------------------------------------------- */

#define N_READERS 4
#define N_PUBLISH 200

typedef struct race {
    sl_snapshot_t *s;
    atomic_bool stop;
    atomic_int reached; /* readers that saw the last object */
    atomic_int bad;     /* a freed object seen, or ids going backwards */
    atomic_long reads;
} race_t;

static void *reader(void *arg) {
    race_t *r = arg;
    sl_snapshot_view_t v = {0};
    int last = 0;
    bool reached = false;
    long n = 0;
    while (!atomic_load(&r->stop)) {
        const obj_t *o = sl_snapshot_view_get(r->s, &v);
        if (!o || o->magic != MAGIC || o->id < last) atomic_fetch_add(&r->bad, 1);
        if (o) last = o->id;
        /* Now and then take a reference of our own across a publish, as a request would. */
        if ((++n & 63) == 0) {
            obj_t *mine = sl_snapshot_acquire(r->s);
            if (!mine || mine->magic != MAGIC || mine->id < last) atomic_fetch_add(&r->bad, 1);
            if (mine) obj_unref(mine);
        }
        if (!reached && last == N_PUBLISH) {
            reached = true;
            atomic_fetch_add(&r->reached, 1);
        }
    }
    atomic_fetch_add(&r->reads, n);
    sl_snapshot_view_release(&v);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_readers_while_publishing(void **state) {
    race_t r = {.s = sl_snapshot_new(obj_ref, obj_unref, obj_new(0))};
    pthread_t th[N_READERS];
    for (int i = 0; i < N_READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);

    for (int id = 1; id <= N_PUBLISH; id++) {
        sl_snapshot_publish(r.s, obj_new(id));
        if (id % 20 == 0) sched_yield(); /* let readers hold some objects across publishes */
    }
    /* Poll (no fixed sleep) until every reader has seen the last object. */
    double deadline = now_s() + 20.0;
    while (atomic_load(&r.reached) < N_READERS && now_s() < deadline)
        sched_yield();
    atomic_store(&r.stop, true);
    for (int i = 0; i < N_READERS; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(atomic_load(&r.reached), N_READERS);
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_true(atomic_load(&r.reads) >= N_READERS);
    /* Views are released: only the holder's object is left. */
    assert_int_equal(atomic_load(&live), 1);
    sl_snapshot_free(r.s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_and_acquire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_refreshes_only_on_new_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_references_keep_old_object_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_while_publishing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
