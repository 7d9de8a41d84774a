/* JSON output shared by the CLI commands that print tensors (`model run`, `models infer`). */
#include "cli.h"

#include "core/buf.h"
#include "engine/engine.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void sl_cli_json_string(sl_buf_t *b, const char *s) {
    sl_buf_putc(b, '"');
    sl_buf_json_escape(b, s, strlen(s));
    sl_buf_putc(b, '"');
}

void sl_cli_json_number(sl_buf_t *b, const sl_tensor_t *t, int64_t i) {
    switch (t->dtype) {
    case SL_DT_FLOAT: {
        float v = ((const float *)t->data)[i];
        if (isfinite(v))
            sl_buf_printf(b, "%.9g", (double)v);
        else
            sl_buf_puts(b, "null");
        return;
    }
    case SL_DT_DOUBLE: {
        double v = ((const double *)t->data)[i];
        if (isfinite(v))
            sl_buf_printf(b, "%.17g", v);
        else
            sl_buf_puts(b, "null");
        return;
    }
    case SL_DT_BOOL:
        sl_buf_puts(b, ((const uint8_t *)t->data)[i] ? "true" : "false");
        return;
    case SL_DT_UINT8:
        sl_buf_printf(b, "%u", (unsigned)((const uint8_t *)t->data)[i]);
        return;
    case SL_DT_INT8:
        sl_buf_printf(b, "%d", (int)((const int8_t *)t->data)[i]);
        return;
    case SL_DT_UINT16:
        sl_buf_printf(b, "%u", (unsigned)((const uint16_t *)t->data)[i]);
        return;
    case SL_DT_INT16:
        sl_buf_printf(b, "%d", (int)((const int16_t *)t->data)[i]);
        return;
    case SL_DT_INT32:
        sl_buf_printf(b, "%" PRId32, ((const int32_t *)t->data)[i]);
        return;
    case SL_DT_UINT32:
        sl_buf_printf(b, "%" PRIu32, ((const uint32_t *)t->data)[i]);
        return;
    case SL_DT_INT64:
        sl_buf_printf(b, "%" PRId64, ((const int64_t *)t->data)[i]);
        return;
    case SL_DT_UINT64:
        sl_buf_printf(b, "%" PRIu64, ((const uint64_t *)t->data)[i]);
        return;
    default:
        sl_buf_puts(b, "null");
        return;
    }
}
