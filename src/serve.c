/* `sluice serve`: loads the configuration, starts the chosen components on one runtime in
 * start order, watches the config file for hot reload, and stops gracefully on SIGTERM/SIGINT. */
#include "app.h"
#include "cli.h"

#include "core/config_reload.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMPONENTS 8

typedef struct serve {
    sl_app_t app;
    sl_config_t *cfg;
    sl_config_reloader_t *reloader;
    uv_signal_t sighup;
    const sl_component_t *comps[MAX_COMPONENTS];
    void *states[MAX_COMPONENTS];
    size_t n;
} serve_t;

static const char serve_help[] =
    "Usage: sluice serve [--config FILE] [--target LIST] [--model-repository DIR]\n"
    "                    [--backend-dir DIR] [--list-targets]\n"
    "\n"
    "Runs Sluice components in this process. Without --config every option has its\n"
    "documented default (docs/configuration.md); without --target all components run.\n"
    "\n"
    "Options:\n"
    "  --config FILE    YAML configuration; reloaded when the file changes (SIGHUP too)\n"
    "  --target LIST    comma-separated components to run, or 'all' (default)\n"
    "  --model-repository DIR  models to serve (overrides inference.model_repository)\n"
    "  --backend-dir DIR       shared-object backends (overrides inference.backend_dir)\n"
    "  --list-targets   print the components and exit\n"
    "  --help           this help\n"
    "\n"
    "SIGTERM or SIGINT stops gracefully: listeners close, in-flight requests finish\n"
    "(up to server.drain_timeout), then the process exits 0. A second signal stops at once.\n";

static void list_targets(void) {
    size_t n;
    const sl_component_t *const *all = sl_components(&n);
    printf("Components (in start order):\n");
    for (size_t i = 0; i < n; i++)
        printf("  %-10s %s\n", all[i]->name, all[i]->summary);
    printf("  %-10s every component above, in one process\n", "all");
}

/* Resolves --target into components in start order. Returns false with a message on error. */
static bool pick_targets(const char *list, serve_t *s) {
    size_t n;
    const sl_component_t *const *all = sl_components(&n);
    bool want[MAX_COMPONENTS] = {false};
    char *copy = sl_strdup(list);
    bool ok = true;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strcmp(tok, "all") == 0) {
            for (size_t i = 0; i < n; i++)
                want[i] = true;
            continue;
        }
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(all[i]->name, tok) == 0) want[i] = found = true;
        }
        if (!found) {
            fprintf(stderr, "sluice serve: unknown target '%s' (see sluice serve --list-targets)\n",
                    tok);
            ok = false;
        }
    }
    free(copy);
    for (size_t i = 0; i < n && ok; i++) {
        if (want[i]) s->comps[s->n++] = all[i];
    }
    if (ok && s->n == 0) {
        fprintf(stderr, "sluice serve: --target names no component\n");
        ok = false;
    }
    return ok;
}

static void on_started(sl_runtime_t *rt, void *arg) {
    serve_t *s = arg;
    for (size_t i = 0; i < s->n; i++) {
        if (s->comps[i]->start) s->comps[i]->start(s->states[i]);
    }
    SL_INFO("serve", "sluice ready", SL_LF_U("components", s->n),
            SL_LF_U("io_threads", sl_runtime_loop_count(rt)));
}

static void on_stopping(sl_runtime_t *rt, void *arg) {
    serve_t *s = arg;
    for (size_t i = s->n; i-- > 0;) {
        if (s->comps[i]->stop) s->comps[i]->stop(s->states[i]);
    }
}

static void free_components(serve_t *s, size_t n) {
    for (size_t i = n; i-- > 0;)
        s->comps[i]->free(s->states[i]);
}

/* Every I/O thread has finished: release the components while the configuration they were
 * given is still alive, then what lives on the main loop, so sl_runtime_run can return. */
static void on_stopped(sl_runtime_t *rt, void *arg) {
    serve_t *s = arg;
    free_components(s, s->n);
    s->n = 0;
    uv_close((uv_handle_t *)&s->sighup, NULL);
    if (s->reloader) {
        sl_config_reloader_stop(s->reloader);
        s->reloader = NULL;
    }
    if (s->app.tracer) {
        sl_tracer_shutdown(s->app.tracer, NULL, NULL);
        s->app.tracer = NULL;
    }
}

static void on_sighup(uv_signal_t *h, int signum) {
    serve_t *s = h->data;
    SL_INFO("serve", "SIGHUP received, reloading configuration");
    if (s->reloader) sl_config_reloader_trigger(s->reloader);
}

static void on_config_apply(const sl_config_t *cfg, void *arg) {
    serve_t *s = arg;
    if (s->app.tracer) sl_tracer_set_sample_ratio(s->app.tracer, cfg->tracing.sample_ratio);
    for (size_t i = 0; i < s->n; i++) {
        if (s->comps[i]->reload) s->comps[i]->reload(s->states[i], cfg);
    }
}

static bool load_config(const char *path, sl_config_t *cfg) {
    if (!path) {
        sl_config_defaults(cfg);
        return true;
    }
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config_load_file(path, cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    sl_config_errors_free(&errs);
    return rc == 0;
}

static int serve_run(int argc, char **argv) {
    const char *config_path = NULL;
    const char *targets = "all";
    const char *model_repository = NULL, *backend_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list-targets") == 0) {
            list_targets();
            return SL_EXIT_OK;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config_path = a + 9;
        } else if (strcmp(a, "--model-repository") == 0 && i + 1 < argc) {
            model_repository = argv[++i];
        } else if (strncmp(a, "--model-repository=", 19) == 0) {
            model_repository = a + 19;
        } else if (strcmp(a, "--backend-dir") == 0 && i + 1 < argc) {
            backend_dir = argv[++i];
        } else if (strncmp(a, "--backend-dir=", 14) == 0) {
            backend_dir = a + 14;
        } else if (strcmp(a, "--target") == 0 && i + 1 < argc) {
            targets = argv[++i];
        } else if (strncmp(a, "--target=", 9) == 0) {
            targets = a + 9;
        } else {
            fprintf(stderr, "sluice serve: unexpected argument '%s'\n\n%s", a, serve_help);
            return SL_EXIT_USAGE;
        }
    }

    serve_t s = {0};
    if (!pick_targets(targets, &s)) return SL_EXIT_USAGE;
    s.cfg = sl_calloc(1, sizeof *s.cfg);
    if (!load_config(config_path, s.cfg)) {
        fprintf(stderr, "sluice serve: configuration has errors, not starting\n");
        sl_config_free(s.cfg);
        free(s.cfg);
        return SL_EXIT_FAIL;
    }
    sl_log_level_set(s.cfg->log.level);
    sl_log_set_rate_limit(s.cfg->log.rate_limit);

    sl_runtime_opts_t ro = {
        .io_threads = s.cfg->server.io_threads,
        .worker_threads = s.cfg->server.worker_threads,
        .drain_timeout_ms = s.cfg->server.drain_timeout_ms,
        .drain_delay_ms = s.cfg->server.drain_delay_ms,
    };
    s.app.rt = sl_runtime_new(&ro);
    s.app.cfg = s.cfg;
    s.app.model_repository = model_repository;
    s.app.backend_dir = backend_dir;
    if (s.cfg->tracing.endpoint && s.cfg->tracing.endpoint[0]) {
        sl_tracer_opts_t to = {
            .service_name = s.cfg->tracing.service_name,
            .endpoint = s.cfg->tracing.endpoint,
            .sample_ratio = s.cfg->tracing.sample_ratio,
            .queue_size = s.cfg->tracing.queue_size,
            .batch_size = s.cfg->tracing.batch_size,
            .flush_interval_ms = s.cfg->tracing.flush_interval_ms,
            .export_timeout_ms = s.cfg->tracing.export_timeout_ms,
        };
        int terr = 0;
        s.app.tracer = sl_tracer_new(&to, sl_runtime_main_loop(s.app.rt), &terr);
        if (!s.app.tracer) {
            fprintf(stderr, "sluice serve: tracing.endpoint '%s' is not an http:// URL\n",
                    s.cfg->tracing.endpoint);
            sl_runtime_free(s.app.rt);
            sl_config_free(s.cfg);
            free(s.cfg);
            return SL_EXIT_FAIL;
        }
    }

    int exit_code = SL_EXIT_OK;
    sl_buf_t err = SL_BUF_INIT;
    size_t inited = 0;
    for (; inited < s.n; inited++) {
        if (s.comps[inited]->init(&s.app, &s.states[inited], &err) != 0) {
            fprintf(stderr, "sluice serve: %s: %s\n", s.comps[inited]->name, err.data);
            exit_code = SL_EXIT_FAIL;
            break;
        }
    }
    if (exit_code == SL_EXIT_OK) {
        if (config_path) {
            /* The reloader owns the live configuration from here on. */
            s.reloader = sl_config_reloader_start(sl_runtime_main_loop(s.app.rt), s.cfg,
                                                  on_config_apply, &s);
            s.cfg = NULL;
        }
        uv_signal_init(sl_runtime_main_loop(s.app.rt), &s.sighup);
        s.sighup.data = &s;
        uv_signal_start(&s.sighup, on_sighup, SIGHUP);
        sl_runtime_on_started(s.app.rt, on_started, &s);
        sl_runtime_on_stopping(s.app.rt, on_stopping, &s);
        sl_runtime_on_stopped(s.app.rt, on_stopped, &s);
        sl_runtime_run(s.app.rt);
        SL_INFO("serve", "stopped");
    } else if (s.app.tracer) {
        sl_tracer_shutdown(s.app.tracer, NULL, NULL);
        uv_run(sl_runtime_main_loop(s.app.rt), UV_RUN_DEFAULT);
    }
    if (exit_code != SL_EXIT_OK) free_components(&s, inited);
    sl_runtime_free(s.app.rt);
    if (s.cfg) {
        sl_config_free(s.cfg);
        free(s.cfg);
    }
    sl_buf_free(&err);
    return exit_code;
}

const sl_cli_command_t sl_cmd_serve = {
    .name = "serve",
    .summary = "run Sluice components (default: all)",
    .help = serve_help,
    .run = serve_run,
};
