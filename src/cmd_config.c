/* `sluice config check FILE` (validate offline: exit 0, or every error as file:line and exit 1)
 * and `sluice config docs` (print docs/configuration.md, generated from the option table). */
#include "app.h"
#include "cli.h"

#include "core/config.h"

#include <stdio.h>
#include <string.h>

static const char config_help[] =
    "Usage: sluice config check FILE\n"
    "       sluice config docs\n"
    "\n"
    "check  validates FILE as `sluice serve --config FILE` would load it: exits 0 when it\n"
    "       is valid, else prints every error as 'file:line: message' and exits 1.\n"
    "       ${ENV} and ${file:...} references are resolved, so run it where Sluice runs.\n"
    "docs   prints the reference of every option (docs/configuration.md) in Markdown.\n";

static int config_run(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "docs") == 0) {
        sl_buf_t out = SL_BUF_INIT;
        sl_config_docs_markdown(&out);
        fwrite(out.data, 1, out.len, stdout);
        sl_buf_free(&out);
        return SL_EXIT_OK;
    }
    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        fputs(config_help, stderr);
        return SL_EXIT_USAGE;
    }
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config_load_file(argv[2], &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (errs.truncated) fprintf(stderr, "%s: too many errors, stopped\n", argv[2]);
    sl_config_errors_free(&errs);
    if (rc != 0) return SL_EXIT_FAIL;
    /* Sections that components parse themselves (the gateway's pools, limits, routes...). */
    size_t n;
    const sl_component_t *const *comps = sl_components(&n);
    sl_buf_t err = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (comps[i]->check && comps[i]->check(&cfg, &err) != 0) rc = SL_EINVAL;
    }
    if (err.len) fprintf(stderr, "%s%s", err.data, err.data[err.len - 1] == '\n' ? "" : "\n");
    sl_buf_free(&err);
    sl_config_free(&cfg);
    if (rc != 0) return SL_EXIT_FAIL;
    printf("%s: ok\n", argv[2]);
    return SL_EXIT_OK;
}

const sl_cli_command_t sl_cmd_config = {
    .name = "config",
    .summary = "check a configuration file, or print the option reference",
    .help = config_help,
    .run = config_run,
};
