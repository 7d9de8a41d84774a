/* `sluice health URL`: exit 0 only when the URL's /readyz answers 200, for container
 * HEALTHCHECKs and scripts. URL is a base ("http://127.0.0.1:8000") or a full probe path. */
#include "cli.h"

#include "core/buf.h"
#include "core/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char health_help[] =
    "Usage: sluice health [--timeout MS] URL\n"
    "\n"
    "Asks URL's readiness endpoint and exits 0 when it says ready (HTTP 200), 1 when it\n"
    "answers anything else or cannot be reached, 2 on bad arguments. URL may be a base\n"
    "(http://127.0.0.1:8080, /readyz is appended) or a full URL with a path.\n"
    "Default timeout: 2000 ms.\n";

static int health_run(int argc, char **argv) {
    const char *url = NULL;
    long timeout = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout = strtol(argv[++i], &end, 10);
            if (*end || timeout <= 0 || timeout > 600000) {
                fprintf(stderr, "sluice health: --timeout takes milliseconds (1..600000)\n");
                return SL_EXIT_USAGE;
            }
        } else if (!url && argv[i][0] != '-') {
            url = argv[i];
        } else {
            fputs(health_help, stderr);
            return SL_EXIT_USAGE;
        }
    }
    if (!url) {
        fputs(health_help, stderr);
        return SL_EXIT_USAGE;
    }
    char *host = NULL, *path = NULL;
    uint16_t port;
    if (sl_http_url_parse(url, &host, &port, &path) != 0) {
        fprintf(stderr, "sluice health: '%s' is not an http:// URL\n", url);
        return SL_EXIT_USAGE;
    }
    sl_buf_t full = SL_BUF_INIT;
    sl_buf_puts(&full, url);
    if (strcmp(path, "/") == 0) {
        /* A base URL: probe readiness. */
        while (full.len > 0 && full.data[full.len - 1] == '/')
            full.data[--full.len] = '\0';
        sl_buf_puts(&full, "/readyz");
    }
    free(host);
    free(path);
    int status = 0;
    sl_buf_t body = SL_BUF_INIT;
    int rc = sl_http_fetch("GET", full.data, NULL, 0, (uint32_t)timeout, &status, &body);
    int exit_code;
    if (rc != 0) {
        fprintf(stderr, "%s: unreachable: %s\n", full.data, sl_strerror(rc));
        exit_code = SL_EXIT_FAIL;
    } else if (status != 200) {
        fprintf(stderr, "%s: not ready (HTTP %d) %.*s\n", full.data, status,
                (int)SL_MIN(body.len, 200), body.data ? body.data : "");
        exit_code = SL_EXIT_FAIL;
    } else {
        printf("%s: ready\n", full.data);
        exit_code = SL_EXIT_OK;
    }
    sl_buf_free(&body);
    sl_buf_free(&full);
    return exit_code;
}

const sl_cli_command_t sl_cmd_health = {
    .name = "health",
    .summary = "exit 0 when a Sluice endpoint is ready (for HEALTHCHECKs)",
    .help = health_help,
    .run = health_run,
};
