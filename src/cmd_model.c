/* `sluice model inspect MODEL.onnx` (what a model needs and whether the engine can run it) and
 * `sluice model run MODEL.onnx --input NAME=FILE.npy ...` (one run through src/engine, outputs
 * as .npy files or JSON). The CLI face of the ONNX engine; the engine itself knows no CLI. */
#include "cli.h"

#include "core/buf.h"
#include "core/common.h"
#include "engine/engine.h"
#include "engine/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXIT_CANNOT_RUN = 3 };

static const char model_help[] =
    "Usage: sluice model inspect [--json] MODEL.onnx\n"
    "       sluice model run MODEL.onnx --input NAME=FILE.npy ... [--output-dir DIR]\n"
    "\n"
    "inspect  prints the model's inputs and outputs (name, dtype, shape with symbolic dims),\n"
    "         IR version, producer, opsets, a histogram of its ops, node, initializer and\n"
    "         parameter counts, and whether Sluice can run it ('runnable: no (op ...)' names\n"
    "         the first thing missing). --json prints the same as one JSON object.\n"
    "run      runs the model once on CPU. Every input is given as NAME=FILE.npy (NumPy .npy:\n"
    "         float32, float64, int64, int32, bool or uint8, C order). With --output-dir,\n"
    "         writes DIR/<output>.npy per output; without, prints\n"
    "         {\"outputs\":[{\"name\",\"dtype\",\"shape\",\"data\":[...]}]} on stdout.\n"
    "\n"
    "Exit status: 0 success; 2 bad arguments, unreadable or invalid files, inputs that do not\n"
    "match the model; 3 a model Sluice cannot run (unsupported op or type, invalid graph; for\n"
    "inspect: the model is reported but not runnable); 1 any other failure.\n";

static int usage(const char *msg) {
    if (msg) fprintf(stderr, "sluice model: %s\n\n", msg);
    fputs(model_help, stderr);
    return SL_EXIT_USAGE;
}

/* Exit status for a failure to load a model. */
static int load_exit(sl_eng_status_t st) {
    switch (st) {
    case SL_ENG_EIO:
    case SL_ENG_EPARSE:
    case SL_ENG_EINVAL:
        return SL_EXIT_USAGE;
    case SL_ENG_EUNSUPPORTED:
    case SL_ENG_EGRAPH:
    case SL_ENG_ESHAPE:
    case SL_ENG_ELIMIT:
        return EXIT_CANNOT_RUN;
    default:
        return SL_EXIT_FAIL;
    }
}

/* "float32[batch,64]": symbolic dims by name, unknown ones as '?'. */
static void put_type(sl_buf_t *b, const sl_value_info_t *vi) {
    sl_buf_puts(b, vi->dtype == SL_DT_UNDEFINED ? "?" : sl_dtype_name(vi->dtype));
    if (vi->ndim < 0) {
        sl_buf_puts(b, "[...]");
        return;
    }
    sl_buf_putc(b, '[');
    for (int i = 0; i < vi->ndim; i++) {
        if (i) sl_buf_putc(b, ',');
        if (vi->dims[i] >= 0)
            sl_buf_printf(b, "%" PRId64, vi->dims[i]);
        else
            sl_buf_puts(b, vi->dim_name[i] ? vi->dim_name[i] : "?");
    }
    sl_buf_putc(b, ']');
}

static void put_json_value_info(sl_buf_t *b, const sl_value_info_t *vi) {
    sl_buf_puts(b, "{\"name\":");
    sl_cli_json_string(b, vi->name);
    sl_buf_puts(b, ",\"dtype\":");
    sl_cli_json_string(b, vi->dtype == SL_DT_UNDEFINED ? "unknown" : sl_dtype_name(vi->dtype));
    sl_buf_puts(b, ",\"shape\":");
    if (vi->ndim < 0) {
        sl_buf_puts(b, "null}");
        return;
    }
    sl_buf_putc(b, '[');
    for (int i = 0; i < vi->ndim; i++) {
        if (i) sl_buf_putc(b, ',');
        if (vi->dims[i] >= 0)
            sl_buf_printf(b, "%" PRId64, vi->dims[i]);
        else if (vi->dim_name[i])
            sl_cli_json_string(b, vi->dim_name[i]);
        else
            sl_buf_puts(b, "null");
    }
    sl_buf_puts(b, "]}");
}

/* The opsets worth listing: the default domain, ai.onnx.ml and every domain an op uses. */
static size_t opset_domains(const sl_model_report_t *r, const char **out, size_t cap) {
    size_t n = 0;
    out[n++] = "";
    out[n++] = "ai.onnx.ml";
    for (size_t i = 0; i < r->n_ops && n < cap; i++) {
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            seen = seen || strcmp(out[j], r->ops[i].domain) == 0;
        if (!seen) out[n++] = r->ops[i].domain;
    }
    return n;
}

static void inspect_text(sl_buf_t *b, const char *path, const sl_model_report_t *r) {
    const sl_model_t *m = r->info;
    sl_buf_printf(b, "model: %s\n", path);
    if (m) {
        sl_buf_printf(b, "ir_version: %" PRId64 "\n", sl_model_ir_version(m));
        const char *p = sl_model_producer(m);
        sl_buf_printf(b, "producer: %s\n", p && p[0] ? p : "(none)");
        const char *doms[64];
        size_t nd = opset_domains(r, doms, 64);
        sl_buf_puts(b, "opsets:");
        for (size_t i = 0; i < nd; i++) {
            int64_t v = sl_model_opset(m, doms[i]);
            if (v >= 0) sl_buf_printf(b, " %s=%" PRId64, doms[i][0] ? doms[i] : "ai.onnx", v);
        }
        sl_buf_puts(b, "\ninputs:\n");
        for (size_t i = 0; i < sl_model_num_inputs(m); i++) {
            sl_buf_printf(b, "  %s: ", sl_model_input(m, i)->name);
            put_type(b, sl_model_input(m, i));
            sl_buf_putc(b, '\n');
        }
        sl_buf_puts(b, "outputs:\n");
        for (size_t i = 0; i < sl_model_num_outputs(m); i++) {
            sl_buf_printf(b, "  %s: ", sl_model_output(m, i)->name);
            put_type(b, sl_model_output(m, i));
            sl_buf_putc(b, '\n');
        }
    }
    sl_buf_printf(b, "nodes: %zu\ninitializers: %zu\nparams: %" PRId64 "\nops:\n", r->n_nodes,
                  r->n_initializers, r->n_params);
    for (size_t i = 0; i < r->n_ops; i++) {
        const sl_op_count_t *o = &r->ops[i];
        sl_buf_printf(b, "  %-24s %6zu%s\n", o->op_type, o->count,
                      o->supported ? "" : "  unsupported");
        if (o->domain[0]) sl_buf_printf(b, "    (domain %s)\n", o->domain);
    }
    if (r->runnable)
        sl_buf_puts(b, "runnable: yes\n");
    else
        sl_buf_printf(b, "runnable: no (%s)\n", r->why_not);
}

static void inspect_json(sl_buf_t *b, const char *path, const sl_model_report_t *r) {
    const sl_model_t *m = r->info;
    sl_buf_puts(b, "{\"model\":");
    sl_cli_json_string(b, path);
    if (m) {
        sl_buf_printf(b, ",\"ir_version\":%" PRId64 ",\"producer\":", sl_model_ir_version(m));
        sl_cli_json_string(b, sl_model_producer(m) ? sl_model_producer(m) : "");
        sl_buf_puts(b, ",\"opsets\":{");
        const char *doms[64];
        size_t nd = opset_domains(r, doms, 64);
        bool first = true;
        for (size_t i = 0; i < nd; i++) {
            int64_t v = sl_model_opset(m, doms[i]);
            if (v < 0) continue;
            if (!first) sl_buf_putc(b, ',');
            first = false;
            sl_cli_json_string(b, doms[i][0] ? doms[i] : "ai.onnx");
            sl_buf_printf(b, ":%" PRId64, v);
        }
        sl_buf_puts(b, "},\"inputs\":[");
        for (size_t i = 0; i < sl_model_num_inputs(m); i++) {
            if (i) sl_buf_putc(b, ',');
            put_json_value_info(b, sl_model_input(m, i));
        }
        sl_buf_puts(b, "],\"outputs\":[");
        for (size_t i = 0; i < sl_model_num_outputs(m); i++) {
            if (i) sl_buf_putc(b, ',');
            put_json_value_info(b, sl_model_output(m, i));
        }
        sl_buf_putc(b, ']');
    }
    sl_buf_printf(b, ",\"nodes\":%zu,\"initializers\":%zu,\"params\":%" PRId64 ",\"ops\":[",
                  r->n_nodes, r->n_initializers, r->n_params);
    for (size_t i = 0; i < r->n_ops; i++) {
        const sl_op_count_t *o = &r->ops[i];
        if (i) sl_buf_putc(b, ',');
        sl_buf_puts(b, "{\"domain\":");
        sl_cli_json_string(b, o->domain);
        sl_buf_puts(b, ",\"op_type\":");
        sl_cli_json_string(b, o->op_type);
        sl_buf_printf(b, ",\"count\":%zu,\"supported\":%s}", o->count,
                      o->supported ? "true" : "false");
    }
    sl_buf_printf(b, "],\"runnable\":%s", r->runnable ? "true" : "false");
    if (!r->runnable) {
        sl_buf_puts(b, ",\"why_not\":");
        sl_cli_json_string(b, r->why_not);
    }
    sl_buf_puts(b, "}\n");
}

static int cmd_inspect(int argc, char **argv) {
    bool json = false;
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (argv[i][0] == '-' || path)
            return usage("inspect takes [--json] and one MODEL.onnx");
        else
            path = argv[i];
    }
    if (!path) return usage("inspect needs a MODEL.onnx");
    sl_model_report_t r;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_model_inspect(path, &r, NULL, &err);
    if (st != SL_ENG_OK) {
        fprintf(stderr, "sluice model inspect: %s\n", err.msg);
        return load_exit(st);
    }
    sl_buf_t out = SL_BUF_INIT;
    if (json)
        inspect_json(&out, path, &r);
    else
        inspect_text(&out, path, &r);
    fwrite(out.data, 1, out.len, stdout);
    sl_buf_free(&out);
    int rc = r.runnable ? SL_EXIT_OK : EXIT_CANNOT_RUN;
    sl_model_report_free(&r);
    return rc;
}

/* ---- run ---- */

static void put_output_json(sl_buf_t *b, const char *name, const sl_tensor_t *t) {
    sl_buf_puts(b, "{\"name\":");
    sl_cli_json_string(b, name);
    sl_buf_puts(b, ",\"dtype\":");
    sl_cli_json_string(b, sl_dtype_name(t->dtype));
    sl_buf_puts(b, ",\"shape\":[");
    for (int d = 0; d < t->ndim; d++)
        sl_buf_printf(b, "%s%" PRId64, d ? "," : "", t->dims[d]);
    sl_buf_puts(b, "],\"data\":[");
    int64_t n = sl_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (i) sl_buf_putc(b, ',');
        sl_cli_json_number(b, t, i);
    }
    sl_buf_puts(b, "]}");
}

/* DIR/<name>.npy, with characters that are unsafe in a file name replaced by '_'. */
static char *output_path(const char *dir, const char *name, size_t idx) {
    sl_buf_t p = SL_BUF_INIT;
    sl_buf_printf(&p, "%s/", dir);
    if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        sl_buf_printf(&p, "output_%zu", idx);
    } else {
        for (const char *c = name; *c; c++) {
            bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
            sl_buf_putc(&p, ok ? *c : '_');
        }
    }
    sl_buf_puts(&p, ".npy");
    return p.data;
}

typedef struct run_args {
    const char *model;
    const char *out_dir;
    int n_inputs;
    char **names; /* NAME of each --input, pointing into argv copies */
    char **files;
} run_args_t;

static int parse_run_args(int argc, char **argv, run_args_t *a) {
    memset(a, 0, sizeof *a);
    a->names = sl_calloc((size_t)argc, sizeof *a->names);
    a->files = sl_calloc((size_t)argc, sizeof *a->files);
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (strcmp(arg, "--input") == 0 || strcmp(arg, "--output-dir") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice model run: %s needs a value\n", arg);
                return SL_EXIT_USAGE;
            }
            val = argv[++i];
        } else if (strncmp(arg, "--input=", 8) == 0) {
            val = arg + 8;
            arg = "--input";
        } else if (strncmp(arg, "--output-dir=", 13) == 0) {
            val = arg + 13;
            arg = "--output-dir";
        } else if (arg[0] == '-' || a->model) {
            fprintf(stderr, "sluice model run: unexpected argument '%s'\n\n", arg);
            fputs(model_help, stderr);
            return SL_EXIT_USAGE;
        } else {
            a->model = arg;
            continue;
        }
        if (strcmp(arg, "--output-dir") == 0) {
            a->out_dir = val;
            continue;
        }
        const char *eq = strchr(val, '=');
        if (!eq || eq == val || !eq[1]) {
            fprintf(stderr, "sluice model run: --input takes NAME=FILE.npy, got '%s'\n", val);
            return SL_EXIT_USAGE;
        }
        a->names[a->n_inputs] = sl_strndup(val, (size_t)(eq - val));
        a->files[a->n_inputs++] = sl_strdup(eq + 1);
    }
    if (!a->model) return usage("run needs a MODEL.onnx");
    return SL_EXIT_OK;
}

static void free_run_args(run_args_t *a) {
    for (int i = 0; i < a->n_inputs; i++) {
        free(a->names[i]);
        free(a->files[i]);
    }
    free(a->names);
    free(a->files);
}

static void list_inputs(const sl_model_t *m) {
    fprintf(stderr, "the model's inputs:");
    sl_buf_t b = SL_BUF_INIT;
    for (size_t i = 0; i < sl_model_num_inputs(m); i++) {
        sl_buf_reset(&b);
        put_type(&b, sl_model_input(m, i));
        fprintf(stderr, " %s %s%s", sl_model_input(m, i)->name, b.data,
                i + 1 < sl_model_num_inputs(m) ? "," : "");
    }
    fprintf(stderr, "\n");
    sl_buf_free(&b);
}

/* Reads every input the model takes from the --input files, in model order. */
static int read_inputs(const sl_model_t *m, const run_args_t *a, sl_tensor_t *in) {
    size_t n = sl_model_num_inputs(m);
    for (int i = 0; i < a->n_inputs; i++) {
        int idx = sl_model_input_index(m, a->names[i]);
        if (idx < 0) {
            fprintf(stderr, "sluice model run: the model has no input '%s'; ", a->names[i]);
            list_inputs(m);
            return SL_EXIT_USAGE;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(a->names[j], a->names[i]) == 0) {
                fprintf(stderr, "sluice model run: input '%s' is given twice\n", a->names[i]);
                return SL_EXIT_USAGE;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        const char *name = sl_model_input(m, k)->name;
        int found = -1;
        for (int i = 0; i < a->n_inputs && found < 0; i++) {
            if (strcmp(a->names[i], name) == 0) found = i;
        }
        if (found < 0) {
            fprintf(stderr, "sluice model run: input '%s' is missing; pass --input %s=FILE.npy; ",
                    name, name);
            list_inputs(m);
            return SL_EXIT_USAGE;
        }
        sl_eng_error_t err = {0};
        if (sl_npy_read_file(a->files[found], 0, &in[k], &err) != SL_ENG_OK) {
            fprintf(stderr, "sluice model run: input '%s': %s\n", name, err.msg);
            return SL_EXIT_USAGE;
        }
    }
    return SL_EXIT_OK;
}

static int write_outputs(const sl_model_t *m, const char *dir, const sl_tensor_t *out) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (mkdir(dir, 0777) != 0) {
            fprintf(stderr, "sluice model run: cannot create --output-dir '%s': %s\n", dir,
                    strerror(errno));
            return SL_EXIT_USAGE;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "sluice model run: --output-dir '%s' is not a directory\n", dir);
        return SL_EXIT_USAGE;
    }
    for (size_t i = 0; i < sl_model_num_outputs(m); i++) {
        char *path = output_path(dir, sl_model_output(m, i)->name, i);
        sl_eng_error_t err = {0};
        sl_eng_status_t st = sl_npy_write_file(path, &out[i], &err);
        if (st != SL_ENG_OK) {
            fprintf(stderr, "sluice model run: output '%s': %s\n", sl_model_output(m, i)->name,
                    err.msg);
            free(path);
            return SL_EXIT_FAIL;
        }
        printf("%s\n", path);
        free(path);
    }
    return SL_EXIT_OK;
}

static int cmd_run(int argc, char **argv) {
    run_args_t a;
    int rc = parse_run_args(argc, argv, &a);
    if (rc != SL_EXIT_OK) {
        free_run_args(&a);
        return rc;
    }
    sl_model_t *m = NULL;
    sl_run_t *r = NULL;
    sl_tensor_t *in = NULL, *out = NULL;
    size_t n_in = 0;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_model_load_file(a.model, NULL, &m, &err);
    if (st != SL_ENG_OK) {
        fprintf(stderr, "sluice model run: %s: %s\n", a.model, err.msg);
        rc = load_exit(st);
        goto done;
    }
    n_in = sl_model_num_inputs(m);
    in = sl_calloc(n_in + 1, sizeof *in);
    out = sl_calloc(sl_model_num_outputs(m) + 1, sizeof *out);
    if ((rc = read_inputs(m, &a, in)) != SL_EXIT_OK) goto done;
    if ((st = sl_run_new(m, &r, &err)) == SL_ENG_OK)
        st = sl_run_exec(r, in, n_in, out, sl_model_num_outputs(m), &err);
    if (st != SL_ENG_OK) {
        fprintf(stderr, "sluice model run: %s\n", err.msg);
        rc = st == SL_ENG_EINVAL         ? SL_EXIT_USAGE
             : st == SL_ENG_EUNSUPPORTED ? EXIT_CANNOT_RUN
                                         : SL_EXIT_FAIL;
        goto done;
    }
    if (a.out_dir) {
        rc = write_outputs(m, a.out_dir, out);
    } else {
        sl_buf_t b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"outputs\":[");
        for (size_t i = 0; i < sl_model_num_outputs(m); i++) {
            if (i) sl_buf_putc(&b, ',');
            put_output_json(&b, sl_model_output(m, i)->name, &out[i]);
        }
        sl_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
        sl_buf_free(&b);
        rc = SL_EXIT_OK;
    }
done:
    for (size_t i = 0; in && i < n_in; i++)
        free(in[i].data);
    free(in);
    free(out);
    sl_run_free(r);
    sl_model_free(m);
    free_run_args(&a);
    return rc;
}

static int model_run(int argc, char **argv) {
    if (argc < 2) return usage(NULL);
    if (strcmp(argv[1], "inspect") == 0) return cmd_inspect(argc, argv);
    if (strcmp(argv[1], "run") == 0) return cmd_run(argc, argv);
    fprintf(stderr, "sluice model: unknown subcommand '%s'\n\n", argv[1]);
    fputs(model_help, stderr);
    return SL_EXIT_USAGE;
}

const sl_cli_command_t sl_cmd_model = {
    .name = "model",
    .summary = "inspect an ONNX model, or run it once on .npy inputs",
    .help = model_help,
    .run = model_run,
};
