/* `sluice version` and `sluice help [COMMAND]`. */
#include "cli.h"

#include <stdio.h>

static int version_run(int argc, char **argv) {
    printf("sluice %s\n", SL_VERSION);
    return SL_EXIT_OK;
}

const sl_cli_command_t sl_cmd_version = {
    .name = "version",
    .summary = "print the version",
    .help = "Usage: sluice version\n\nPrints the version of this sluice binary.\n",
    .run = version_run,
};

static int help_run(int argc, char **argv) {
    if (argc < 2) {
        sl_cli_print_usage(stdout);
        return SL_EXIT_OK;
    }
    const sl_cli_command_t *cmd = sl_cli_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "sluice help: unknown command '%s'\n", argv[1]);
        return SL_EXIT_USAGE;
    }
    fputs(cmd->help, stdout);
    return SL_EXIT_OK;
}

const sl_cli_command_t sl_cmd_help = {
    .name = "help",
    .summary = "show help for a command",
    .help = "Usage: sluice help [COMMAND]\n\nShows the commands, or the help of one command.\n",
    .run = help_run,
};
