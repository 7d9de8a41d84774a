/* The sluice executable: subcommand dispatch and help. Each command lives in its own file
 * (serve.c, cmd_config.c, cmd_health.c); this file only routes argv to them. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const sl_cli_command_t *const commands[] = {
    &sl_cmd_serve,  &sl_cmd_config, &sl_cmd_health,  &sl_cmd_model,
    &sl_cmd_models, &sl_cmd_keys,   &sl_cmd_version, &sl_cmd_help,
};

const sl_cli_command_t *sl_cli_find(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    }
    return NULL;
}

void sl_cli_print_usage(FILE *out) {
    fprintf(out,
            "sluice: serve machine-learning models as small, independently scalable services\n\n"
            "Usage: sluice COMMAND [ARGS...]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    }
    fprintf(out, "\nRun 'sluice help COMMAND' or 'sluice COMMAND --help' for details.\n");
}

bool sl_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    }
    return false;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        sl_cli_print_usage(stderr);
        return SL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        sl_cli_print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return sl_cmd_version.run(argc - 1, argv + 1);
    const sl_cli_command_t *cmd = sl_cli_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "sluice: unknown command '%s'\n\n", argv[1]);
        sl_cli_print_usage(stderr);
        return SL_EXIT_USAGE;
    }
    if (sl_cli_wants_help(argc - 1, argv + 1)) {
        fputs(cmd->help, stdout);
        return 0;
    }
    return cmd->run(argc - 1, argv + 1);
}
