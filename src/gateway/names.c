/* Name rules shared by the gateway's parsers. */
#include "gateway/names.h"

static bool is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

bool sl_gw_name_ok(const char *s, size_t n, size_t max, bool no_dot_start) {
    if (n == 0 || n > max || (no_dot_start && s[0] == '.')) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-') return false;
    return true;
}

bool sl_gw_version_ok(const char *s, size_t n, size_t max) {
    if (n == 0 || n > max || !is_alnum(s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '+' && s[i] != '-') return false;
    return true;
}
