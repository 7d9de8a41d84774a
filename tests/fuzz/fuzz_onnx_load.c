/* Fuzzes the ONNX loader (src/engine/model.c, graph.c) with arbitrary bytes: a model that
 * loads is run once on zero-filled inputs of its declared shapes (bounded sizes), and the bytes
 * also go through sl_model_inspect, which describes models the engine cannot run. Every
 * failure must come with a message; nothing may crash or leak. */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT_ELEMS 4096

static const sl_model_opts_t opts = {
    .max_file_bytes = 1u << 20,
    .max_nodes = 512,
    .max_tensor_bytes = 1u << 20,
};

static void run_zeros(const sl_model_t *m) {
    size_t n = sl_model_num_inputs(m), no = sl_model_num_outputs(m);
    sl_tensor_t *in = calloc(n + 1, sizeof *in), *out = calloc(no + 1, sizeof *out);
    if (!in || !out) abort();
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const sl_value_info_t *vi = sl_model_input(m, i);
        sl_tensor_t *t = &in[i];
        t->dtype = vi->dtype == SL_DT_UNDEFINED ? SL_DT_FLOAT : vi->dtype;
        t->ndim = vi->ndim < 0 ? 1 : vi->ndim;
        int64_t elems = 1;
        for (int d = 0; d < t->ndim; d++) {
            t->dims[d] = vi->ndim < 0 || vi->dims[d] < 0 ? 1 : vi->dims[d];
            if (t->dims[d] > MAX_INPUT_ELEMS) ok = false;
            elems *= ok ? t->dims[d] : 1;
            if (elems > MAX_INPUT_ELEMS) ok = false;
        }
        if (!ok) break;
        t->data = calloc((size_t)elems + 1, 8);
        if (!t->data) abort();
    }
    sl_run_t *r = NULL;
    sl_eng_error_t err = {0};
    if (ok && sl_run_new(m, &r, &err) == SL_ENG_OK) {
        for (int rep = 0; rep < 2; rep++) {
            err.msg[0] = '\0';
            sl_eng_status_t st = sl_run_exec(r, in, n, out, no, &err);
            if (st != SL_ENG_OK && err.msg[0] == '\0') abort();
            if (st != SL_ENG_OK) break;
            for (size_t i = 0; i < no; i++) {
                if (sl_tensor_nbytes(&out[i]) && !out[i].data) abort();
            }
        }
        sl_run_free(r);
    }
    for (size_t i = 0; i < n; i++)
        free(in[i].data);
    free(in);
    free(out);
}

static void inspect(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_onnx_load.%d.onnx", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return;
    size_t wrote = size ? fwrite(data, 1, size, f) : 0;
    fclose(f);
    if (wrote != size) return;
    sl_model_report_t rep;
    sl_model_t *m = NULL;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_model_inspect(path, &rep, &m, &err);
    unlink(path);
    if (st != SL_ENG_OK) {
        if (err.msg[0] == '\0' || m) abort();
        return;
    }
    if (!rep.runnable && rep.why_not[0] == '\0') abort();
    if (rep.runnable != (m != NULL)) abort();
    sl_model_report_free(&rep);
    sl_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_model_t *m = NULL;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_model_load_memory(data, size, &opts, &m, &err);
    if (st != SL_ENG_OK) {
        if (m || err.msg[0] == '\0') abort();
    } else {
        run_zeros(m);
        sl_model_free(m);
    }
    inspect(data, size);
    return 0;
}
