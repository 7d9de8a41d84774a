/* The CLI's command table: each subcommand is a name, a one-line summary, its --help text and
 * a run function taking argv with argv[0] = the command name. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses shared by every command. */
enum { SL_EXIT_OK = 0, SL_EXIT_FAIL = 1, SL_EXIT_USAGE = 2 };

typedef struct sl_cli_command {
    const char *name;
    const char *summary;
    const char *help;
    int (*run)(int argc, char **argv);
} sl_cli_command_t;

extern const sl_cli_command_t sl_cmd_serve, sl_cmd_config, sl_cmd_health, sl_cmd_version,
    sl_cmd_help;
extern const sl_cli_command_t sl_cmd_model, sl_cmd_models, sl_cmd_keys;

const sl_cli_command_t *sl_cli_find(const char *name);
void sl_cli_print_usage(FILE *out);
/* True when argv (argv[0] = command) contains --help or -h. */
bool sl_cli_wants_help(int argc, char **argv);

/* JSON pieces the commands print: a quoted, escaped string; element i of a tensor as a JSON
 * number (or true/false; NaN and infinities have no JSON form: null). */
struct sl_buf;
struct sl_tensor;
void sl_cli_json_string(struct sl_buf *b, const char *s);
void sl_cli_json_number(struct sl_buf *b, const struct sl_tensor *t, int64_t i);

#endif
