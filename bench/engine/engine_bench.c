/* Times the engine on one model: loads it (reporting load-to-ready), builds inputs of the
 * requested batch size (random values; integer inputs drawn from [1, --int-max)), warms up,
 * then reports the median and p90 latency of sl_run_exec over --iters runs as one JSON line.
 * Used by bench/engine/run; links only the engine library. */
#include "engine/engine.h"

#include <cblas.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr, "usage: engine_bench MODEL.onnx [--batch N] [--seq N] [--iters N] "
                    "[--warmup N] [--threads N] [--int-max N]\n"
                    "       engine_bench --sgemm M N K [ITERS]\n");
    exit(2);
}

/* --sgemm M N K: OpenBLAS sgemm alone on the same shapes, the ceiling to compare against. */
static int sgemm_mode(long M, long N, long K, long iters) {
    float *a = calloc((size_t)(M * K), sizeof *a), *b = calloc((size_t)(K * N), sizeof *b);
    float *c = calloc((size_t)(M * N), sizeof *c);
    for (long i = 0; i < M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < K * N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double *lat = malloc((size_t)iters * sizeof *lat);
    for (long i = 0; i < iters + 10; i++) {
        double s = now_us();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a,
                    (int)K, b, (int)N, 0.0f, c, (int)N);
        if (i >= 10) lat[i - 10] = now_us() - s;
    }
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    double med = lat[iters / 2];
    printf("{\"sgemm\":[%ld,%ld,%ld],\"median_us\":%.3f,\"gflops\":%.2f}\n", M, N, K, med,
           2.0 * (double)M * (double)N * (double)K / (med * 1e3));
    free(a);
    free(b);
    free(c);
    free(lat);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "--sgemm") == 0) {
        if (argc < 5) usage();
        return sgemm_mode(strtol(argv[2], NULL, 10), strtol(argv[3], NULL, 10),
                          strtol(argv[4], NULL, 10), argc > 5 ? strtol(argv[5], NULL, 10) : 200);
    }
    const char *path = argv[1];
    long batch = 1, seq = 12, iters = 200, warmup = 20, threads = 1, int_max = 40;
    for (int i = 2; i < argc; i++) {
        long *dst = NULL;
        if (strcmp(argv[i], "--batch") == 0)
            dst = &batch;
        else if (strcmp(argv[i], "--seq") == 0)
            dst = &seq;
        else if (strcmp(argv[i], "--iters") == 0)
            dst = &iters;
        else if (strcmp(argv[i], "--warmup") == 0)
            dst = &warmup;
        else if (strcmp(argv[i], "--threads") == 0)
            dst = &threads;
        else if (strcmp(argv[i], "--int-max") == 0)
            dst = &int_max;
        if (!dst || i + 1 >= argc) usage();
        *dst = strtol(argv[++i], NULL, 10);
        if (*dst <= 0) usage();
    }
    sl_eng_error_t err = {0};
    sl_model_opts_t opts = {.intra_op_threads = (int)threads};
    sl_model_t *m = NULL;
    double t0 = now_us();
    if (sl_model_load_file(path, &opts, &m, &err) != SL_ENG_OK) {
        fprintf(stderr, "engine_bench: %s: %s\n", path, err.msg);
        return 3;
    }
    sl_run_t *r = NULL;
    if (sl_run_new(m, &r, &err) != SL_ENG_OK) {
        fprintf(stderr, "engine_bench: %s\n", err.msg);
        return 3;
    }
    size_t n_in = sl_model_num_inputs(m), n_out = sl_model_num_outputs(m);
    sl_tensor_t *in = calloc(n_in, sizeof *in), *out = calloc(n_out, sizeof *out);
    srand(42);
    for (size_t i = 0; i < n_in; i++) {
        const sl_value_info_t *vi = sl_model_input(m, i);
        in[i].dtype = vi->dtype;
        in[i].ndim = vi->ndim;
        for (int d = 0; d < vi->ndim; d++) {
            in[i].dims[d] = vi->dims[d] >= 0 ? vi->dims[d] : (d == 0 ? batch : seq);
        }
        int64_t n = sl_tensor_numel(&in[i]);
        in[i].data = malloc(sl_tensor_nbytes(&in[i]) + 1);
        for (int64_t k = 0; k < n; k++) {
            if (vi->dtype == SL_DT_FLOAT) {
                ((float *)in[i].data)[k] = (float)rand() / (float)RAND_MAX * 16.0f;
            } else if (vi->dtype == SL_DT_INT64) {
                ((int64_t *)in[i].data)[k] = 1 + rand() % (int_max - 1);
            } else {
                fprintf(stderr,
                        "engine_bench: input %s has dtype %s; only float32 and int64 "
                        "inputs are generated\n",
                        vi->name, sl_dtype_name(vi->dtype));
                return 2;
            }
        }
    }
    /* The first run sizes the arena: part of getting ready to serve. */
    if (sl_run_exec(r, in, n_in, out, n_out, &err) != SL_ENG_OK) {
        fprintf(stderr, "engine_bench: run: %s\n", err.msg);
        return 3;
    }
    double ready_ms = (now_us() - t0) / 1e3;
    for (long i = 0; i < warmup; i++)
        sl_run_exec(r, in, n_in, out, n_out, &err);
    double *lat = malloc((size_t)iters * sizeof *lat);
    for (long i = 0; i < iters; i++) {
        double s = now_us();
        sl_run_exec(r, in, n_in, out, n_out, &err);
        lat[i] = now_us() - s;
    }
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    printf("{\"model\":\"%s\",\"batch\":%ld,\"threads\":%ld,\"median_us\":%.2f,\"p90_us\":%.2f,"
           "\"load_to_ready_ms\":%.2f}\n",
           path, batch, threads, lat[iters / 2], lat[(iters * 9) / 10], ready_ms);
    for (size_t i = 0; i < n_in; i++)
        free(in[i].data);
    free(in);
    free(out);
    free(lat);
    sl_run_free(r);
    sl_model_free(m);
    return 0;
}
