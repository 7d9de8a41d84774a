/* Fuzzes the configuration loader on arbitrary bytes (YAML syntax, limits, ${} references, every
 * value syntax). A config that loads must also survive the round trip through the option table:
 * each value formatted as the file would spell it parses back to the same value. */
#include "core/config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config_load_buffer("fuzz.yaml", data, size, &cfg, &errs);
    if (rc != 0) {
        /* Every failure explains itself, within the limit. */
        if (errs.n == 0 || errs.n > SL_CONFIG_MAX_ERRORS) abort();
        sl_config_errors_free(&errs);
        return 0;
    }
    if (errs.n != 0) abort();
    size_t n;
    const sl_config_option_t *opts = sl_config_options(&n);
    for (size_t i = 0; i < n; i++) {
        sl_buf_t text = SL_BUF_INIT, msg = SL_BUF_INIT;
        sl_config_t copy;
        sl_config_defaults(&copy);
        sl_config_option_format(&opts[i], &cfg, &text);
        if (sl_config__set(&opts[i], &copy, text.data ? text.data : "", text.len, NULL, &msg) != 0)
            abort();
        if (!sl_config_option_equal(&opts[i], &cfg, &copy)) abort();
        sl_config_free(&copy);
        sl_buf_free(&text);
        sl_buf_free(&msg);
    }
    sl_config_free(&cfg);
    return 0;
}
