/* Fuzzes the JSON parser with its limits on arbitrary bytes. What parses must print and parse
 * back to an equal tree, and the typed getters must answer (value or error) for any field. */
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *root;
    char err[256];
    sl_json_limits_t lim = {.max_bytes = 1u << 20};
    int rc = sl_json_parse_ex((const char *)data, size, &lim, &root, err, sizeof err);
    if (rc != 0) {
        if (root != NULL || err[0] == '\0') abort();
        return 0;
    }
    sl_buf_t out = SL_BUF_INIT;
    if (sl_json_print(root, &out) != 0) abort();
    cJSON *back;
    if (sl_json_parse(out.data, out.len, &back, err, sizeof err) != 0) abort();
    /* Numbers that do not survive printing (inf prints as null) make the trees differ; only
     * compare when the printed form is stable. */
    sl_buf_t again = SL_BUF_INIT;
    if (sl_json_print(back, &again) != 0 || strcmp(out.data, again.data) != 0) abort();
    if (cJSON_IsObject(root)) {
        const cJSON *item;
        cJSON_ArrayForEach(item, root) {
            if (!item->string) continue;
            const char *s;
            int64_t i;
            double d;
            bool b;
            const cJSON *a;
            size_t n;
            sl_json_get_string(root, item->string, &s, err, sizeof err);
            sl_json_get_int64(root, item->string, INT64_MIN, INT64_MAX, &i, err, sizeof err);
            sl_json_get_int64(root, item->string, -5, 5, &i, err, sizeof err);
            sl_json_get_double(root, item->string, &d, err, sizeof err);
            sl_json_get_bool(root, item->string, &b, err, sizeof err);
            sl_json_get_array(root, item->string, &a, &n, err, sizeof err);
            sl_json_get_object(root, item->string, &a, err, sizeof err);
        }
    }
    sl_buf_free(&again);
    sl_buf_free(&out);
    cJSON_Delete(back);
    cJSON_Delete(root);
    return 0;
}
