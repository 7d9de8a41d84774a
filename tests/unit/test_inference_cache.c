/* Unit tests for the response cache: what the key covers (and what it ignores), exact hits on
 * hash collisions, copies in and out, LRU eviction by entries and by bytes, and concurrent
 * lookups and stores. */
#include "core/common.h"
#include "inference/cache.h"
#include "oip/oip_types.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A request with one INT32 input "x" of the given shape holding vals, asking for outputs. */
static sl_infer_request_t *req_new(const char *in_name, sluice_dtype_t dt, uint32_t ndim,
                                   const int64_t *dims, const int32_t *vals, size_t n,
                                   const char *const *outs, size_t n_outs, bool binary) {
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = sl_infer_request_strndup(req, in_name, strlen(in_name));
    in->dtype = dt;
    in->ndim = ndim;
    memcpy(in->dims, dims, ndim * sizeof *dims);
    int32_t *d = sl_infer_request_alloc(req, n * 4);
    memcpy(d, vals, n * 4);
    in->data = d;
    in->byte_size = n * 4;
    for (size_t i = 0; i < n_outs; i++) {
        sl_infer_output_req_t *o = sl_infer_request_add_output(req);
        o->name = sl_infer_request_strndup(req, outs[i], strlen(outs[i]));
        o->binary = binary;
    }
    req->binary_default = binary;
    return req;
}

static const int64_t dims_1x4[2] = {1, 4};
static const int64_t dims_2x2[2] = {2, 2};
static const int32_t vals_a[4] = {1, 2, 3, 4};
static const int32_t vals_b[4] = {1, 2, 3, 5};
static const char *const outs_y[1] = {"y"};
static const char *const outs_yz[2] = {"y", "z"};
static const char *const outs_zy[2] = {"z", "y"};

static void key_of(const char *version, sl_infer_request_t *req, sl_resp_cache_key_t *k) {
    sl_resp_cache_key_make(version, req, k);
    sl_infer_request_free(req);
}

static bool same_key(const sl_resp_cache_key_t *a, const sl_resp_cache_key_t *b) {
    return a->hash == b->hash && a->len == b->len && memcmp(a->blob, b->blob, a->len) == 0;
}

static void test_key_covers_inputs_and_outputs(void **state) {
    sl_resp_cache_key_t base, same, bin, k;
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals_a, 4, outs_y, 1, false), &base);
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals_a, 4, outs_y, 1, false), &same);
    assert_true(same_key(&base, &same));
    /* Binary or JSON output only changes the encoding of the answer. */
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals_a, 4, outs_y, 1, true), &bin);
    assert_true(same_key(&base, &bin));

    struct {
        const char *what;
        const char *version, *name;
        sluice_dtype_t dt;
        const int64_t *dims;
        const int32_t *vals;
        const char *const *outs;
        size_t n_outs;
    } diffs[] = {
        {"version", "1.0.1", "x", SLUICE_DT_INT32, dims_1x4, vals_a, outs_y, 1},
        {"input name", "1.0.0", "w", SLUICE_DT_INT32, dims_1x4, vals_a, outs_y, 1},
        {"datatype", "1.0.0", "x", SLUICE_DT_FP32, dims_1x4, vals_a, outs_y, 1},
        {"shape", "1.0.0", "x", SLUICE_DT_INT32, dims_2x2, vals_a, outs_y, 1},
        {"data", "1.0.0", "x", SLUICE_DT_INT32, dims_1x4, vals_b, outs_y, 1},
        {"outputs", "1.0.0", "x", SLUICE_DT_INT32, dims_1x4, vals_a, outs_yz, 2},
        {"all outputs", "1.0.0", "x", SLUICE_DT_INT32, dims_1x4, vals_a, NULL, 0},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(diffs); i++) {
        key_of(diffs[i].version,
               req_new(diffs[i].name, diffs[i].dt, 2, diffs[i].dims, diffs[i].vals, 4,
                       diffs[i].outs, diffs[i].n_outs, false),
               &k);
        if (same_key(&base, &k)) fail_msg("a different %s gives the same key", diffs[i].what);
        assert_true(base.hash != k.hash);
        sl_resp_cache_key_free(&k);
    }
    /* The order of requested outputs is the order of the response's outputs. */
    sl_resp_cache_key_t yz, zy;
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals_a, 4, outs_yz, 2, false), &yz);
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals_a, 4, outs_zy, 2, false), &zy);
    assert_false(same_key(&yz, &zy));
    sl_resp_cache_key_free(&yz);
    sl_resp_cache_key_free(&zy);
    sl_resp_cache_key_free(&base);
    sl_resp_cache_key_free(&same);
    sl_resp_cache_key_free(&bin);
}

/* A response with output "y" = {v, v+1, v+2, v+3}. */
static sl_infer_response_t *resp_new(int32_t v) {
    const char *names[1] = {"y"};
    sl_infer_response_t *r = sl_infer_response_new("m", "1.0.0", 1, names, 16);
    sl_infer_output_t *o = &r->outputs[0];
    o->dtype = SLUICE_DT_INT32;
    o->ndim = 2;
    o->dims[0] = 1;
    o->dims[1] = 4;
    o->byte_size = 16;
    o->data = sl_infer_response_data(r);
    for (int i = 0; i < 4; i++)
        ((int32_t *)o->data)[i] = v + i;
    return r;
}

static int32_t resp_value(const sl_infer_response_t *r) {
    assert_int_equal(r->n_outputs, 1);
    assert_string_equal(r->outputs[0].name, "y");
    assert_int_equal(r->outputs[0].byte_size, 16);
    const int32_t *d = r->outputs[0].data;
    for (int i = 1; i < 4; i++)
        assert_int_equal(d[i], d[0] + i);
    return d[0];
}

static void key_n(int n, sl_resp_cache_key_t *k) {
    int32_t vals[4] = {n, 0, 0, 0};
    key_of("1.0.0", req_new("x", SLUICE_DT_INT32, 2, dims_1x4, vals, 4, NULL, 0, false), k);
}

static void test_hit_returns_a_copy(void **state) {
    sl_resp_cache_t *c = sl_resp_cache_new(8, 0);
    sl_resp_cache_key_t k;
    key_n(1, &k);
    assert_null(sl_resp_cache_get(c, &k));
    sl_infer_response_t *orig = resp_new(100);
    sl_resp_cache_put(c, &k, orig);
    ((int32_t *)orig->outputs[0].data)[0] = -1; /* the cache holds its own copy */
    sl_infer_response_free(orig);
    sl_infer_response_t *hit = sl_resp_cache_get(c, &k);
    assert_non_null(hit);
    assert_true(hit->cached);
    assert_string_equal(hit->model_name, "m");
    assert_string_equal(hit->model_version, "1.0.0");
    assert_int_equal(resp_value(hit), 100);
    assert_int_equal(hit->outputs[0].dims[1], 4);
    ((int32_t *)hit->outputs[0].data)[0] = -1; /* and hands out copies */
    sl_infer_response_free(hit);
    hit = sl_resp_cache_get(c, &k);
    assert_int_equal(resp_value(hit), 100);
    sl_infer_response_free(hit);
    /* Storing the same key again replaces the answer. */
    sl_infer_response_t *newer = resp_new(200);
    sl_resp_cache_put(c, &k, newer);
    sl_infer_response_free(newer);
    hit = sl_resp_cache_get(c, &k);
    assert_int_equal(resp_value(hit), 200);
    sl_infer_response_free(hit);
    sl_resp_cache_key_free(&k);
    sl_resp_cache_free(c);
}

static void test_collision_is_not_a_hit(void **state) {
    sl_resp_cache_t *c = sl_resp_cache_new(8, 0);
    uint8_t a[3] = {1, 2, 3}, b[3] = {1, 2, 4};
    sl_resp_cache_key_t ka = {.hash = 42, .blob = a, .len = 3};
    sl_resp_cache_key_t kb = {.hash = 42, .blob = b, .len = 3};
    sl_infer_response_t *r = resp_new(7);
    sl_resp_cache_put(c, &ka, r);
    sl_infer_response_free(r);
    assert_null(sl_resp_cache_get(c, &kb));
    r = resp_new(8);
    sl_resp_cache_put(c, &kb, r);
    sl_infer_response_free(r);
    sl_infer_response_t *ha = sl_resp_cache_get(c, &ka), *hb = sl_resp_cache_get(c, &kb);
    assert_int_equal(resp_value(ha), 7);
    assert_int_equal(resp_value(hb), 8);
    sl_infer_response_free(ha);
    sl_infer_response_free(hb);
    sl_resp_cache_free(c);
}

static bool has(sl_resp_cache_t *c, int n) {
    sl_resp_cache_key_t k;
    key_n(n, &k);
    sl_infer_response_t *r = sl_resp_cache_get(c, &k);
    sl_resp_cache_key_free(&k);
    if (!r) return false;
    assert_int_equal(resp_value(r), n * 10);
    sl_infer_response_free(r);
    return true;
}

static void put_n(sl_resp_cache_t *c, int n) {
    sl_resp_cache_key_t k;
    key_n(n, &k);
    sl_infer_response_t *r = resp_new(n * 10);
    sl_resp_cache_put(c, &k, r);
    sl_infer_response_free(r);
    sl_resp_cache_key_free(&k);
}

static void test_lru_by_entries(void **state) {
    sl_resp_cache_t *c = sl_resp_cache_new(3, 0);
    put_n(c, 1);
    put_n(c, 2);
    put_n(c, 3);
    assert_true(has(c, 1)); /* 1 is now the most recently used; 2 the least */
    put_n(c, 4);
    assert_false(has(c, 2));
    assert_true(has(c, 1));
    assert_true(has(c, 3));
    assert_true(has(c, 4));
    /* Many more: only the last three stay. */
    for (int i = 10; i < 1000; i++)
        put_n(c, i);
    for (int i = 1; i < 997; i++) {
        if (has(c, i)) fail_msg("entry %d should have been evicted", i);
    }
    for (int i = 997; i < 1000; i++)
        assert_true(has(c, i));
    sl_resp_cache_free(c);
}

static void test_lru_by_bytes(void **state) {
    /* Learn what one entry costs from a cache that holds exactly one. */
    uint64_t per = 0;
    for (uint64_t b = 64; b < 65536 && !per; b++) {
        sl_resp_cache_t *probe = sl_resp_cache_new(100, b);
        put_n(probe, 1);
        if (has(probe, 1)) per = b;
        sl_resp_cache_free(probe);
    }
    assert_true(per > 16);
    /* Room for two entries, not three. */
    sl_resp_cache_t *c = sl_resp_cache_new(100, 2 * per + per / 2);
    put_n(c, 1);
    put_n(c, 2);
    assert_true(has(c, 1));
    put_n(c, 3);
    assert_false(has(c, 2));
    assert_true(has(c, 1));
    assert_true(has(c, 3));
    sl_resp_cache_free(c);
    /* An entry larger than the whole cache is not stored, and evicts nothing. */
    c = sl_resp_cache_new(100, per - 1);
    put_n(c, 1);
    assert_false(has(c, 1));
    sl_resp_cache_free(c);
}

typedef struct {
    sl_resp_cache_t *c;
    int seed;
    int hits;
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    uint32_t x = (uint32_t)w->seed * 2654435761u + 1;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int n = (int)(x % 64);
        if (x & 0x100)
            put_n(w->c, n);
        else if (has(w->c, n))
            w->hits++;
    }
    return NULL;
}

static void test_concurrent_use(void **state) {
    sl_resp_cache_t *c = sl_resp_cache_new(16, 0);
    enum { N = 4 };
    worker_t w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker_t){.c = c, .seed = i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    int hits = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        hits += w[i].hits;
    }
    assert_true(hits > 0); /* every hit was checked against its key's value */
    sl_resp_cache_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_covers_inputs_and_outputs),
        cmocka_unit_test(test_hit_returns_a_copy),
        cmocka_unit_test(test_collision_is_not_a_hit),
        cmocka_unit_test(test_lru_by_entries),
        cmocka_unit_test(test_lru_by_bytes),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
