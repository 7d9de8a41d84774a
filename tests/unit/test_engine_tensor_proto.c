/* Unit tests for engine/tensor_proto: TensorProto values in raw_data and in each typed field
 * become the same sl_tensor_t, every malformed or unsupported tensor is refused with a message
 * naming it, and serialized .pb files (as in the ONNX test data) read back. */
#include "engine/tensor_proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static Onnx__TensorProto proto(int32_t dt, int64_t *dims, size_t ndims) {
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    tp.has_data_type = 1;
    tp.data_type = dt;
    tp.n_dims = ndims;
    tp.dims = dims;
    tp.name = "w";
    return tp;
}

static void set_raw(Onnx__TensorProto *tp, const void *data, size_t len) {
    tp->has_raw_data = 1;
    tp->raw_data.data = (uint8_t *)data;
    tp->raw_data.len = len;
}

static void test_raw_float(void **state) {
    int64_t dims[] = {2, 3};
    float v[6] = {1.5f, -2, 0, 3.25f, 1e-30f, -7};
    Onnx__TensorProto tp = proto(SL_DT_FLOAT, dims, 2);
    set_raw(&tp, v, sizeof v);
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_int_equal(t.dtype, SL_DT_FLOAT);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.dims[0], 2);
    assert_int_equal(t.dims[1], 3);
    assert_memory_equal(t.data, v, sizeof v);
    free(t.data);
}

/* Every dtype through raw_data: the bytes come back unchanged (bools normalised to 0/1). */
static void test_raw_every_dtype(void **state) {
    static const sl_dtype_t dts[] = {SL_DT_FLOAT,   SL_DT_UINT8,  SL_DT_INT8,   SL_DT_UINT16,
                                     SL_DT_INT16,   SL_DT_INT32,  SL_DT_INT64,  SL_DT_BOOL,
                                     SL_DT_FLOAT16, SL_DT_DOUBLE, SL_DT_UINT32, SL_DT_UINT64};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        int64_t dims[] = {4};
        size_t es = sl_dtype_size(dts[k]);
        uint8_t raw[32];
        for (size_t i = 0; i < 4 * es; i++)
            raw[i] = dts[k] == SL_DT_BOOL ? (uint8_t)(i % 2) : (uint8_t)(i * 7 + 1);
        Onnx__TensorProto tp = proto(dts[k], dims, 1);
        set_raw(&tp, raw, 4 * es);
        sl_tensor_t t;
        sl_eng_error_t err = {0};
        assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
        assert_int_equal(t.dtype, dts[k]);
        assert_memory_equal(t.data, raw, 4 * es);
        free(t.data);
        /* One byte short is refused. */
        set_raw(&tp, raw, 4 * es - 1);
        assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_EPARSE);
        assert_non_null(strstr(err.msg, "raw_data has"));
        assert_null(t.data);
    }
}

static void test_raw_bool_normalised(void **state) {
    int64_t dims[] = {3};
    uint8_t raw[] = {0, 1, 200};
    Onnx__TensorProto tp = proto(SL_DT_BOOL, dims, 1);
    set_raw(&tp, raw, 3);
    sl_tensor_t t;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, NULL), SL_ENG_OK);
    uint8_t want[] = {0, 1, 1};
    assert_memory_equal(t.data, want, 3);
    free(t.data);
}

static void test_typed_fields(void **state) {
    int64_t dims[] = {3};
    sl_tensor_t t;
    sl_eng_error_t err = {0};

    float f[] = {1, -2.5f, 3};
    Onnx__TensorProto tp = proto(SL_DT_FLOAT, dims, 1);
    tp.n_float_data = 3;
    tp.float_data = f;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_memory_equal(t.data, f, sizeof f);
    free(t.data);

    double d[] = {1e300, -0.5, 2};
    tp = proto(SL_DT_DOUBLE, dims, 1);
    tp.n_double_data = 3;
    tp.double_data = d;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_memory_equal(t.data, d, sizeof d);
    free(t.data);

    int64_t l[] = {INT64_MIN, 0, INT64_MAX};
    tp = proto(SL_DT_INT64, dims, 1);
    tp.n_int64_data = 3;
    tp.int64_data = l;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_memory_equal(t.data, l, sizeof l);
    free(t.data);

    uint64_t u[] = {UINT64_MAX, 1, 4000000000u};
    tp = proto(SL_DT_UINT64, dims, 1);
    tp.n_uint64_data = 3;
    tp.uint64_data = u;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_memory_equal(t.data, u, sizeof u);
    free(t.data);

    tp.data_type = SL_DT_UINT32; /* uint32 also travels in uint64_data */
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    uint32_t u32[] = {UINT32_MAX, 1, 4000000000u};
    assert_memory_equal(t.data, u32, sizeof u32);
    free(t.data);
}

/* int32_data carries int32 and every smaller integer type, bool and float16 bits. */
static void test_int32_data_narrowing(void **state) {
    int64_t dims[] = {3};
    int32_t v[] = {-1, 2, 127};
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    Onnx__TensorProto tp = proto(SL_DT_INT32, dims, 1);
    tp.n_int32_data = 3;
    tp.int32_data = v;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_memory_equal(t.data, v, sizeof v);
    free(t.data);

    tp.data_type = SL_DT_INT8;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    int8_t i8[] = {-1, 2, 127};
    assert_memory_equal(t.data, i8, 3);
    free(t.data);

    tp.data_type = SL_DT_UINT8;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    uint8_t u8[] = {255, 2, 127};
    assert_memory_equal(t.data, u8, 3);
    free(t.data);

    tp.data_type = SL_DT_INT16;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    int16_t i16[] = {-1, 2, 127};
    assert_memory_equal(t.data, i16, sizeof i16);
    free(t.data);

    tp.data_type = SL_DT_UINT16;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    uint16_t u16[] = {65535, 2, 127};
    assert_memory_equal(t.data, u16, sizeof u16);
    free(t.data);

    tp.data_type = SL_DT_BOOL;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    uint8_t b[] = {1, 1, 1};
    assert_memory_equal(t.data, b, 3);
    free(t.data);

    int32_t h[] = {0x3c00, 0xc000, 0}; /* float16 1.0, -2.0, 0 */
    tp.data_type = SL_DT_FLOAT16;
    tp.int32_data = h;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    uint16_t hb[] = {0x3c00, 0xc000, 0};
    assert_memory_equal(t.data, hb, sizeof hb);
    free(t.data);
}

static void test_scalar_and_empty(void **state) {
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    int64_t l = 42;
    Onnx__TensorProto tp = proto(SL_DT_INT64, NULL, 0);
    tp.n_int64_data = 1;
    tp.int64_data = &l;
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(*(int64_t *)t.data, 42);
    free(t.data);

    int64_t dims[] = {3, 0};
    tp = proto(SL_DT_FLOAT, dims, 2);
    assert_int_equal(sl_tensor_from_proto(&tp, 0, &t, &err), SL_ENG_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.dims[1], 0);
    assert_non_null(t.data); /* a zero-size tensor still has an allocation */
    free(t.data);
}

static void expect_refusal(const Onnx__TensorProto *tp, size_t max, sl_eng_status_t code,
                           const char *needle) {
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    assert_int_equal(sl_tensor_from_proto(tp, max, &t, &err), code);
    assert_int_equal(err.code, code);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(t.data);
}

static void test_refusals(void **state) {
    int64_t dims[] = {2, 2};
    float f[4] = {0};
    Onnx__TensorProto tp = proto(SL_DT_FLOAT, dims, 2);

    tp.data_type = 8; /* string */
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "string");
    tp.data_type = 14; /* complex64 */
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "complex64");
    tp.data_type = 16;
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "bfloat16");
    tp.data_type = 99;
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "tensor 'w'");
    tp.data_type = 0;
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "data_type is not set");

    tp = proto(SL_DT_FLOAT, dims, 2);
    tp.has_data_location = 1;
    tp.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "external");

    tp = proto(SL_DT_FLOAT, dims, 2);
    Onnx__TensorProto__Segment seg = ONNX__TENSOR_PROTO__SEGMENT__INIT;
    tp.segment = &seg;
    expect_refusal(&tp, 0, SL_ENG_EUNSUPPORTED, "segment");

    int64_t neg[] = {2, -1};
    tp = proto(SL_DT_FLOAT, neg, 2);
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "negative");

    int64_t many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    tp = proto(SL_DT_FLOAT, many, 9);
    expect_refusal(&tp, 0, SL_ENG_ELIMIT, "9 dims");

    int64_t huge[] = {INT64_MAX, INT64_MAX, 2};
    tp = proto(SL_DT_FLOAT, huge, 3);
    expect_refusal(&tp, 0, SL_ENG_ELIMIT, "limit");

    tp = proto(SL_DT_FLOAT, dims, 2);
    set_raw(&tp, f, sizeof f);
    expect_refusal(&tp, 15, SL_ENG_ELIMIT, "limit of 15 bytes");

    /* Typed field count not matching the dims, data in the wrong field, no data at all. */
    tp = proto(SL_DT_FLOAT, dims, 2);
    tp.n_float_data = 3;
    tp.float_data = f;
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "float_data has 3 values, dims need 4");
    tp = proto(SL_DT_FLOAT, dims, 2);
    int64_t l[4] = {0};
    tp.n_int64_data = 4;
    tp.int64_data = l;
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "stored in int64_data, expected float_data");
    tp = proto(SL_DT_FLOAT, dims, 2);
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "no values");
    tp = proto(SL_DT_FLOAT, dims, 2);
    set_raw(&tp, f, sizeof f);
    tp.n_float_data = 4;
    tp.float_data = f;
    expect_refusal(&tp, 0, SL_ENG_EPARSE, "both raw_data and typed");
}

static char *write_tmp(const void *data, size_t len) {
    char *path = strdup("/tmp/sl-test-tp-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_read_pb_roundtrip(void **state) {
    int64_t dims[] = {2, 2};
    int64_t v[] = {5, -6, 7, 1LL << 40};
    Onnx__TensorProto tp = proto(SL_DT_INT64, dims, 2);
    tp.name = "input_ids";
    tp.n_int64_data = 4;
    tp.int64_data = v;
    size_t len = onnx__tensor_proto__get_packed_size(&tp);
    uint8_t *buf = malloc(len);
    onnx__tensor_proto__pack(&tp, buf);
    char *path = write_tmp(buf, len);

    sl_tensor_t t;
    char *name;
    sl_eng_error_t err = {0};
    assert_int_equal(sl_tensor_read_pb(path, 0, &t, &name, &err), SL_ENG_OK);
    assert_string_equal(name, "input_ids");
    assert_int_equal(t.dtype, SL_DT_INT64);
    assert_memory_equal(t.data, v, sizeof v);
    free(t.data);
    free(name);

    /* Truncated: not a TensorProto; the message names the file. */
    unlink(path);
    free(path);
    path = write_tmp(buf, len - 3);
    assert_int_not_equal(sl_tensor_read_pb(path, 0, &t, &name, &err), SL_ENG_OK);
    assert_non_null(strstr(err.msg, path));
    assert_null(name);
    assert_null(t.data);
    /* Over the size limit. */
    unlink(path);
    free(path);
    path = write_tmp(buf, len);
    assert_int_equal(sl_tensor_read_pb(path, 16, &t, NULL, &err), SL_ENG_ELIMIT);
    unlink(path);
    free(path);
    free(buf);

    assert_int_equal(sl_tensor_read_pb("/nonexistent/x.pb", 0, &t, NULL, &err), SL_ENG_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.pb"));
}

/* A file from Debian's ONNX test data, when installed: test_abs's input is x, float 3x4x5. */
static void test_read_pb_onnx_testdata(void **state) {
    const char *p = "/usr/share/libonnx-testdata/data/node/test_abs/test_data_set_0/input_0.pb";
    if (access(p, R_OK) != 0) skip();
    sl_tensor_t t;
    char *name;
    sl_eng_error_t err = {0};
    assert_int_equal(sl_tensor_read_pb(p, 0, &t, &name, &err), SL_ENG_OK);
    assert_string_equal(name, "x");
    assert_int_equal(t.dtype, SL_DT_FLOAT);
    assert_int_equal(t.ndim, 3);
    assert_int_equal(t.dims[0] * t.dims[1] * t.dims[2], 60);
    assert_float_equal(((float *)t.data)[0], 1.7640524f, 1e-7);
    free(t.data);
    free(name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_float),
        cmocka_unit_test(test_raw_every_dtype),
        cmocka_unit_test(test_raw_bool_normalised),
        cmocka_unit_test(test_typed_fields),
        cmocka_unit_test(test_int32_data_narrowing),
        cmocka_unit_test(test_scalar_and_empty),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_read_pb_roundtrip),
        cmocka_unit_test(test_read_pb_onnx_testdata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
