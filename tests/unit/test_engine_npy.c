/* Unit tests for engine/npy: files numpy wrote are read, what we write is byte for byte what
 * numpy writes, each of the six dtypes round-trips (scalars and zero-size arrays too), and every
 * malformed or unsupported file is refused with a message saying what was found. */
#include "engine/npy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Bytes of np.save(np.array([[1,2,3],[4,5,6]], np.float32)) and np.save(np.array(3.5)) from
 * numpy 1.24. */
#define PAD20 "                    "
static const char np_f32[] = "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
                             "'shape': (2, 3), }" PAD20 "                                      \n"
                             "\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x00\x00\xa0@"
                             "\x00\x00\xc0@";
static const char np_scalar[] = "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                                "'shape': (), }" PAD20 PAD20 PAD20 "  \n"
                                "\x00\x00\x00\x00\x00\x00\x0c@";

static char *tmp_path(void) {
    char *p = strdup("/tmp/sl-test-npy-XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    close(fd);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void test_read_numpy_files(void **state) {
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    assert_int_equal(sizeof np_f32 - 1, 128 + 24);
    assert_int_equal(sl_npy_read_memory(np_f32, sizeof np_f32 - 1, 0, &t, &err), SL_ENG_OK);
    assert_int_equal(t.dtype, SL_DT_FLOAT);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.dims[0], 2);
    assert_int_equal(t.dims[1], 3);
    float want[] = {1, 2, 3, 4, 5, 6};
    assert_memory_equal(t.data, want, sizeof want);
    free(t.data);

    assert_int_equal(sl_npy_read_memory(np_scalar, sizeof np_scalar - 1, 0, &t, &err), SL_ENG_OK);
    assert_int_equal(t.dtype, SL_DT_DOUBLE);
    assert_int_equal(t.ndim, 0);
    assert_true(*(double *)t.data == 3.5);
    free(t.data);
}

static void test_write_matches_numpy(void **state) {
    float v[] = {1, 2, 3, 4, 5, 6};
    sl_tensor_t t = {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {2, 3}, .data = v};
    char *p = tmp_path();
    sl_eng_error_t err = {0};
    assert_int_equal(sl_npy_write_file(p, &t, &err), SL_ENG_OK);
    size_t len;
    uint8_t *got = slurp(p, &len);
    assert_int_equal(len, sizeof np_f32 - 1);
    assert_memory_equal(got, np_f32, len);
    free(got);

    double d = 3.5;
    sl_tensor_t s = {.dtype = SL_DT_DOUBLE, .ndim = 0, .data = &d};
    assert_int_equal(sl_npy_write_file(p, &s, &err), SL_ENG_OK);
    got = slurp(p, &len);
    assert_int_equal(len, sizeof np_scalar - 1);
    assert_memory_equal(got, np_scalar, len);
    free(got);
    unlink(p);
    free(p);
}

static void roundtrip(const sl_tensor_t *t) {
    char *p = tmp_path();
    sl_eng_error_t err = {0};
    assert_int_equal(sl_npy_write_file(p, t, &err), SL_ENG_OK);
    size_t len;
    uint8_t *raw = slurp(p, &len);
    assert_int_equal((len - sl_tensor_nbytes(t)) % 64, 0); /* data starts 64-aligned */
    free(raw);
    sl_tensor_t back;
    assert_int_equal(sl_npy_read_file(p, 0, &back, &err), SL_ENG_OK);
    assert_int_equal(back.dtype, t->dtype);
    assert_int_equal(back.ndim, t->ndim);
    for (int i = 0; i < t->ndim; i++)
        assert_int_equal(back.dims[i], t->dims[i]);
    assert_non_null(back.data);
    if (sl_tensor_nbytes(t)) assert_memory_equal(back.data, t->data, sl_tensor_nbytes(t));
    free(back.data);
    unlink(p);
    free(p);
}

static void test_roundtrip_each_dtype(void **state) {
    float f[] = {1.5f, -2, 1e-38f, 3e38f, 0, -0.0f};
    double d[] = {1e-300, -2, 3, 4, 5, 6};
    int64_t l[] = {INT64_MIN, -1, 0, 1, INT64_MAX, 42};
    int32_t i[] = {INT32_MIN, -1, 0, 1, INT32_MAX, 42};
    uint8_t b[] = {1, 0, 0, 1, 1, 0};
    uint8_t u[] = {0, 1, 127, 128, 255, 9};
    sl_tensor_t ts[] = {
        {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {2, 3}, .data = f},
        {.dtype = SL_DT_DOUBLE, .ndim = 1, .dims = {6}, .data = d},
        {.dtype = SL_DT_INT64, .ndim = 3, .dims = {1, 2, 3}, .data = l},
        {.dtype = SL_DT_INT32, .ndim = 2, .dims = {3, 2}, .data = i},
        {.dtype = SL_DT_BOOL, .ndim = 1, .dims = {6}, .data = b},
        {.dtype = SL_DT_UINT8, .ndim = 8, .dims = {1, 1, 1, 1, 1, 1, 2, 3}, .data = u},
        /* scalars and zero-size arrays */
        {.dtype = SL_DT_INT64, .ndim = 0, .data = l},
        {.dtype = SL_DT_BOOL, .ndim = 0, .data = b},
        {.dtype = SL_DT_FLOAT, .ndim = 2, .dims = {0, 3}, .data = NULL},
        {.dtype = SL_DT_UINT8, .ndim = 1, .dims = {0}, .data = NULL},
    };
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++)
        roundtrip(&ts[k]);
}

/* A v1.0 file with header text h (padded and terminated here) and n data bytes of value 1. */
static uint8_t *make_npy(const char *h, size_t ndata, size_t *len) {
    size_t hl = strlen(h) + 1;
    *len = 10 + hl + ndata;
    uint8_t *b = malloc(*len);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hl & 0xff);
    b[9] = (uint8_t)(hl >> 8);
    memcpy(b + 10, h, hl - 1);
    b[10 + hl - 1] = '\n';
    memset(b + 10 + hl, 1, ndata);
    return b;
}

static void expect_refusal_bytes(const uint8_t *b, size_t len, size_t max, sl_eng_status_t code,
                                 const char *needle) {
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_npy_read_memory(b, len, max, &t, &err);
    if (st != code) fail_msg("status %d, want %d (%s)", st, code, err.msg);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(t.data);
}

static void expect_refusal(const char *h, size_t ndata, sl_eng_status_t code, const char *needle) {
    size_t len;
    uint8_t *b = make_npy(h, ndata, &len);
    expect_refusal_bytes(b, len, 0, code, needle);
    free(b);
}

static void expect_ok(const char *h, size_t ndata, sl_dtype_t dt, int ndim) {
    size_t len;
    uint8_t *b = make_npy(h, ndata, &len);
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    if (sl_npy_read_memory(b, len, 0, &t, &err) != SL_ENG_OK) fail_msg("%s: %s", h, err.msg);
    assert_int_equal(t.dtype, dt);
    assert_int_equal(t.ndim, ndim);
    free(t.data);
    free(b);
}

static void test_header_variants_accepted(void **state) {
    /* Key order, quotes, spacing and trailing commas vary between writers. */
    expect_ok("{'shape': (2,3), 'fortran_order': False, 'descr': '<i4'}", 24, SL_DT_INT32, 2);
    expect_ok("{\"descr\":\"|u1\",\"fortran_order\":False,\"shape\":(4,)}", 4, SL_DT_UINT8, 1);
    expect_ok("{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 1L), }", 16, SL_DT_INT64, 2);
    /* Fortran order with one non-trivial dim is the same bytes as C order. */
    expect_ok("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3), }", 12, SL_DT_FLOAT, 2);
    /* Version 2.0: a 4-byte header length. */
    const char *h = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
    size_t hl = strlen(h), len = 12 + hl + 8;
    uint8_t *b = calloc(1, len);
    memcpy(b, "\x93NUMPY\x02\x00", 8);
    b[8] = (uint8_t)hl;
    memcpy(b + 12, h, hl);
    sl_tensor_t t;
    assert_int_equal(sl_npy_read_memory(b, len, 0, &t, NULL), SL_ENG_OK);
    assert_int_equal(t.dtype, SL_DT_DOUBLE);
    free(t.data);
    free(b);
}

static void test_refusals(void **state) {
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    size_t len;
    uint8_t *b = make_npy(ok, 8, &len);
    /* Magic, version, truncation, trailing bytes, size limit. */
    b[1] = 'X';
    expect_refusal_bytes(b, len, 0, SL_ENG_EPARSE, "bad magic");
    b[1] = 'N';
    expect_refusal_bytes(b, 5, 0, SL_ENG_EPARSE, "bad magic");
    b[6] = 4;
    expect_refusal_bytes(b, len, 0, SL_ENG_EUNSUPPORTED, "version 4.0");
    b[6] = 1;
    b[7] = 1;
    expect_refusal_bytes(b, len, 0, SL_ENG_EUNSUPPORTED, "version 1.1");
    b[7] = 0;
    expect_refusal_bytes(b, 40, 0, SL_ENG_EPARSE, "truncated header");
    expect_refusal_bytes(b, len - 1, 0, SL_ENG_EPARSE, "7 data bytes");
    expect_refusal_bytes(b, len, 7, SL_ENG_ELIMIT, "limit of 7 bytes");
    free(b);
    b = make_npy(ok, 9, &len);
    expect_refusal_bytes(b, len, 0, SL_ENG_EPARSE, "9 data bytes, shape and dtype float32 need 8");
    free(b);

    /* Header over 64 KiB (version 2.0 can announce it). */
    uint8_t big[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 2, 0};
    expect_refusal_bytes(big, sizeof big, 0, SL_ENG_ELIMIT, "over 64 KiB");

    /* Dtypes, byte order, memory order. */
    expect_refusal("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
                   SL_ENG_EUNSUPPORTED, "big-endian");
    expect_refusal("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4,
                   SL_ENG_EUNSUPPORTED, "dtype '<f2'");
    expect_refusal("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", 2,
                   SL_ENG_EUNSUPPORTED, "dtype '|i1'");
    expect_refusal("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
                   SL_ENG_EUNSUPPORTED, "structured");
    expect_refusal("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16,
                   SL_ENG_EUNSUPPORTED, "Fortran");

    /* Shapes. */
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
                   SL_ENG_ELIMIT, "more than 8 dims");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4, SL_ENG_EPARSE,
                   "dim 0");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8, SL_ENG_EPARSE,
                   "not a tuple");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': 2, }", 8, SL_ENG_EPARSE,
                   "not a tuple");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 24, SL_ENG_EPARSE,
                   "','");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (1234567890123456789,), }", 4,
                   SL_ENG_EPARSE, "dim 0");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, "
                   "'shape': (999999999999999999, 999999999999999999), }",
                   4, SL_ENG_ELIMIT, "limit");

    /* Dict syntax. */
    expect_refusal("['descr', '<f4']", 4, SL_ENG_EPARSE, "not a dict");
    expect_refusal("{'descr': '<f4', 'fortran_order': False}", 4, SL_ENG_EPARSE, "missing 'shape'");
    expect_refusal("{'fortran_order': False, 'shape': (1,)}", 4, SL_ENG_EPARSE, "missing 'descr'");
    expect_refusal("{'descr': '<f4', 'shape': (1,)}", 4, SL_ENG_EPARSE, "missing 'fortran_order'");
    expect_refusal("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
                   SL_ENG_EPARSE, "'descr' twice");
    expect_refusal("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4, SL_ENG_EPARSE,
                   "True or False");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4,
                   SL_ENG_EPARSE, "unknown key 'x'");
    expect_refusal("{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", 4, SL_ENG_EPARSE,
                   "',' or '}'");
    expect_refusal("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4, SL_ENG_EPARSE,
                   "after the dict");
    expect_refusal("{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}", 4, SL_ENG_EPARSE,
                   "':'");
    expect_refusal("{'descr': '<f4", 4, SL_ENG_EUNSUPPORTED, "descr");
}

static void test_write_refusals(void **state) {
    sl_eng_error_t err = {0};
    uint16_t h[2] = {0};
    sl_tensor_t t = {.dtype = SL_DT_FLOAT16, .ndim = 1, .dims = {2}, .data = h};
    assert_int_equal(sl_npy_write_file("/tmp/never-written.npy", &t, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "float16"));
    assert_int_not_equal(access("/tmp/never-written.npy", F_OK), 0);
    t.dtype = SL_DT_FLOAT;
    assert_int_equal(sl_npy_write_file("/nonexistent-dir/x.npy", &t, &err), SL_ENG_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.npy"));
    t.dims[0] = -2;
    assert_int_equal(sl_npy_write_file("/tmp/never-written.npy", &t, &err), SL_ENG_EINVAL);
    sl_tensor_t r;
    assert_int_equal(sl_npy_read_file("/nonexistent-dir/x.npy", 0, &r, &err), SL_ENG_EIO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_numpy_files),
        cmocka_unit_test(test_write_matches_numpy),
        cmocka_unit_test(test_roundtrip_each_dtype),
        cmocka_unit_test(test_header_variants_accepted),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_write_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
