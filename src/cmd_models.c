/* `sluice models list|load|unload|infer`: model control and one-off inference against a running
 * inference service, through its Open Inference Protocol REST API (the same calls a user would
 * make with curl). */
#include "cli.h"

#include "core/buf.h"
#include "core/common.h"
#include "core/http_client.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:8000"

static const char models_help[] =
    "Usage: sluice models [--url URL] list\n"
    "       sluice models [--url URL] load NAME\n"
    "       sluice models [--url URL] unload NAME\n"
    "       sluice models [--url URL] infer NAME [--version V] --input NAME=FILE.npy ...\n"
    "\n"
    "Talks to a running inference service (default " DEFAULT_URL ", or $SLUICE_URL).\n"
    "list     every model of the repository with its versions and states\n"
    "load     (re)loads NAME from the repository; the old version serves until the new is ready\n"
    "unload   unloads every version of NAME\n"
    "infer    sends one inference request with the .npy files as inputs (float32, float64,\n"
    "         int64, int32, bool, uint8) and prints the JSON response\n"
    "\n"
    "Exit status: 0 success; 1 the server refused or failed (its message is printed);\n"
    "2 bad arguments or unreadable files.\n";

static int usage(const char *msg) {
    if (msg) fprintf(stderr, "sluice models: %s\n\n", msg);
    fputs(models_help, stderr);
    return SL_EXIT_USAGE;
}

/* Sends the request and prints the server's error message on failure. Returns the exit code;
 * body receives the response body. */
static int call(const char *method, const char *base, const char *path, const sl_buf_t *req,
                sl_buf_t *body) {
    sl_buf_t url = SL_BUF_INIT;
    sl_buf_printf(&url, "%s%s", base, path);
    int status = 0;
    int rc = sl_http_fetch(method, url.data, req ? req->data : NULL, req ? req->len : 0, 30000,
                           &status, body);
    if (rc != 0) {
        fprintf(stderr, "sluice models: cannot reach %s: %s\n", url.data, sl_strerror(rc));
        sl_buf_free(&url);
        return SL_EXIT_FAIL;
    }
    sl_buf_free(&url);
    if (status == 200) return SL_EXIT_OK;
    cJSON *j = NULL;
    const char *msg = NULL;
    if (body->len && sl_json_parse(body->data, body->len, &j, NULL, 0) == 0)
        sl_json_get_string(j, "error", &msg, NULL, 0);
    fprintf(stderr, "sluice models: HTTP %d: %s\n", status,
            msg ? msg : (body->len ? body->data : "(no body)"));
    cJSON_Delete(j);
    return SL_EXIT_FAIL;
}

static int cmd_list(const char *base) {
    sl_buf_t body = SL_BUF_INIT;
    sl_buf_t req = SL_BUF_INIT;
    sl_buf_puts(&req, "{}");
    int rc = call("POST", base, "/v2/repository/index", &req, &body);
    cJSON *j = NULL;
    if (rc == SL_EXIT_OK && sl_json_parse(body.data, body.len, &j, NULL, 0) == 0 &&
        cJSON_IsArray(j)) {
        printf("%-28s %-12s %-12s %s\n", "NAME", "VERSION", "STATE", "REASON");
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            const char *name = "", *version = "-", *state = "", *reason = "";
            sl_json_get_string(e, "name", &name, NULL, 0);
            sl_json_get_string(e, "version", &version, NULL, 0);
            sl_json_get_string(e, "state", &state, NULL, 0);
            sl_json_get_string(e, "reason", &reason, NULL, 0);
            printf("%-28s %-12s %-12s %s\n", name, version, state, reason);
        }
    } else if (rc == SL_EXIT_OK) {
        fprintf(stderr, "sluice models: the server's index is not a JSON array\n");
        rc = SL_EXIT_FAIL;
    }
    cJSON_Delete(j);
    sl_buf_free(&body);
    sl_buf_free(&req);
    return rc;
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.';
        if (!ok) return false;
    }
    return true;
}

static int cmd_control(const char *base, const char *verb, const char *name) {
    if (!valid_name(name)) return usage("a model name is letters, digits, '_', '-' and '.'");
    sl_buf_t path = SL_BUF_INIT, body = SL_BUF_INIT, req = SL_BUF_INIT;
    sl_buf_printf(&path, "/v2/repository/models/%s/%s", name, verb);
    sl_buf_puts(&req, "{}");
    int rc = call("POST", base, path.data, &req, &body);
    if (rc == SL_EXIT_OK) printf("%sed %s\n", verb, name);
    sl_buf_free(&path);
    sl_buf_free(&body);
    sl_buf_free(&req);
    return rc;
}

static const char *oip_datatype(sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
        return "FP32";
    case SL_DT_DOUBLE:
        return "FP64";
    case SL_DT_INT64:
        return "INT64";
    case SL_DT_INT32:
        return "INT32";
    case SL_DT_BOOL:
        return "BOOL";
    case SL_DT_UINT8:
        return "UINT8";
    default:
        return NULL;
    }
}

static int cmd_infer(const char *base, int argc, char **argv) {
    const char *model = argv[0], *version = NULL;
    if (!valid_name(model)) return usage("a model name is letters, digits, '_', '-' and '.'");
    sl_buf_t req = SL_BUF_INIT;
    sl_buf_puts(&req, "{\"inputs\":[");
    int n_inputs = 0, rc = SL_EXIT_OK;
    for (int i = 1; i < argc && rc == SL_EXIT_OK; i++) {
        if (strcmp(argv[i], "--version") == 0 && i + 1 < argc) {
            version = argv[++i];
            if (!valid_name(version)) rc = usage("--version takes a version such as 1.2.0");
            continue;
        }
        if (strcmp(argv[i], "--input") != 0 || i + 1 >= argc) {
            fprintf(stderr, "sluice models infer: unexpected argument '%s'\n\n", argv[i]);
            rc = usage(NULL);
            break;
        }
        const char *val = argv[++i];
        const char *eq = strchr(val, '=');
        if (!eq || eq == val || !eq[1]) {
            fprintf(stderr, "sluice models infer: --input takes NAME=FILE.npy, got '%s'\n", val);
            rc = SL_EXIT_USAGE;
            break;
        }
        sl_tensor_t t = {0};
        sl_eng_error_t err = {0};
        if (sl_npy_read_file(eq + 1, 0, &t, &err) != SL_ENG_OK) {
            fprintf(stderr, "sluice models infer: %s: %s\n", eq + 1, err.msg);
            rc = SL_EXIT_USAGE;
            break;
        }
        const char *dt = oip_datatype(t.dtype);
        if (!dt) {
            fprintf(stderr, "sluice models infer: %s: dtype %s is not supported here\n", eq + 1,
                    sl_dtype_name(t.dtype));
            free(t.data);
            rc = SL_EXIT_USAGE;
            break;
        }
        char *name = sl_strndup(val, (size_t)(eq - val));
        sl_buf_puts(&req, n_inputs++ ? ",{\"name\":" : "{\"name\":");
        sl_cli_json_string(&req, name);
        sl_buf_printf(&req, ",\"datatype\":\"%s\",\"shape\":[", dt);
        for (int d = 0; d < t.ndim; d++)
            sl_buf_printf(&req, "%s%" PRId64, d ? "," : "", t.dims[d]);
        sl_buf_puts(&req, "],\"data\":[");
        int64_t n = sl_tensor_numel(&t);
        for (int64_t k = 0; k < n; k++) {
            if (k) sl_buf_putc(&req, ',');
            sl_cli_json_number(&req, &t, k);
        }
        sl_buf_puts(&req, "]}");
        free(name);
        free(t.data);
    }
    if (rc == SL_EXIT_OK && n_inputs == 0) rc = usage("infer needs at least one --input");
    if (rc == SL_EXIT_OK) {
        sl_buf_puts(&req, "]}");
        sl_buf_t path = SL_BUF_INIT, body = SL_BUF_INIT;
        sl_buf_printf(&path, "/v2/models/%s", model);
        if (version) sl_buf_printf(&path, "/versions/%s", version);
        sl_buf_puts(&path, "/infer");
        rc = call("POST", base, path.data, &req, &body);
        if (rc == SL_EXIT_OK) printf("%.*s\n", (int)body.len, body.data);
        sl_buf_free(&path);
        sl_buf_free(&body);
    }
    sl_buf_free(&req);
    return rc;
}

static int models_run(int argc, char **argv) {
    const char *base = getenv("SLUICE_URL");
    if (!base || !base[0]) base = DEFAULT_URL;
    int i = 1;
    if (i < argc && strcmp(argv[i], "--url") == 0) {
        if (i + 1 >= argc) return usage("--url needs a value");
        base = argv[i + 1];
        i += 2;
    } else if (i < argc && strncmp(argv[i], "--url=", 6) == 0) {
        base = argv[i] + 6;
        i++;
    }
    if (strncmp(base, "http://", 7) != 0) return usage("--url must be an http:// URL");
    /* "http://host:8000/" and "http://host:8000" name the same server. */
    char url[1024];
    size_t n = strlen(base);
    while (n > 7 && base[n - 1] == '/')
        n--;
    if (n >= sizeof url) return usage("--url is too long");
    memcpy(url, base, n);
    url[n] = '\0';
    base = url;
    if (i >= argc) return usage("missing subcommand");
    const char *sub = argv[i++];
    if (strcmp(sub, "list") == 0 && i == argc) return cmd_list(base);
    if ((strcmp(sub, "load") == 0 || strcmp(sub, "unload") == 0) && i + 1 == argc)
        return cmd_control(base, sub, argv[i]);
    if (strcmp(sub, "infer") == 0 && i < argc) return cmd_infer(base, argc - i, argv + i);
    return usage("unknown subcommand or wrong arguments");
}

const sl_cli_command_t sl_cmd_models = {
    .name = "models",
    .summary = "list, load, unload and call models on a running inference service",
    .help = models_help,
    .run = models_run,
};
