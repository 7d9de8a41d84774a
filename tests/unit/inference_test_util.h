/* Helpers shared by the inference unit tests (test_inference_backends, _batch, _config and
 * _manager): a completion callback that records what a request got, a tensor descriptor setter,
 * and files and directories under a temporary repository root. Header-only, static inline;
 * include it after <cmocka.h>. */
#ifndef SL_INFERENCE_TEST_UTIL_H
#define SL_INFERENCE_TEST_UTIL_H

#include "oip/oip_types.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* What one request's completion delivered: how often it ran (must be once), the code and
 * message, the response (owned here: free with sl_infer_response_free) and the compute times. */
typedef struct result {
    int calls;
    sl_infer_code_t code;
    char msg[256];
    sl_infer_response_t *resp;
    uint64_t t_start, t_end;
} result_t;

/* An sl_infer_done_cb whose arg is a result_t: records the outcome and frees req. */
static inline void on_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                           const sl_infer_error_t *err, void *arg) {
    result_t *r = arg;
    r->calls++;
    r->resp = resp;
    r->code = err ? err->code : SL_INFER_OK;
    if (err) snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    r->t_start = req->t_compute_start_ns;
    r->t_end = req->t_compute_end_ns;
    sl_infer_request_free(req);
}

/* Fills d (name borrowed: it must outlive d) with a tensor of ndim dims copied from dims. */
static inline void set_tensor_desc(sluice_tensor_desc_t *d, const char *name, sluice_dtype_t dt,
                                   uint32_t ndim, const int64_t *dims) {
    d->name = name;
    d->dtype = dt;
    d->ndim = ndim;
    if (ndim) memcpy(d->dims, dims, ndim * sizeof *dims);
}

/* Writes content to root/rel (the directory must exist), failing the test if it cannot. */
static inline void write_repo_file(const char *root, const char *rel, const char *content) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* Creates the directory root/rel (its parent must exist), failing the test if it cannot. */
static inline void make_repo_dir(const char *root, const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

#endif
