/* The JSON tokenizer under the OIP REST request decoder (oip_json.c), internal to src/oip. It
 * accepts exactly the language of core/json's sl_json_parse (Debian's cJSON 1.7.15-1+deb12u4
 * behind that file's pre-scan),
 * quirks included, so that moving the decoder off cJSON changed nothing a client can see: any
 * byte <= 0x20 is whitespace between tokens (only space, tab, CR, LF after the root value); a
 * UTF-8 BOM may lead; a number is a run of [0-9+-.eE] starting with '-' or a digit that strtod
 * reads whole ("01", "1.", "-.5" pass; "1e", "+1", ".5" do not); strings must be valid
 * UTF-8 without raw control bytes or \u0000, and a \u escape with a non-hex digit decodes to a NUL
 * byte, which ends the string for every C-string user (field names, ids, BYTES elements); nesting
 * is limited to 64 arrays and objects, the size to SL_JSON_MAX_BYTES.
 *
 * Use: sl_oip__json_validate() once over the whole document, then walk it with the cursor
 * helpers below, which trust the validation (they stay within the buffer whatever it holds). */
#ifndef SL_OIP_JSON_SCAN_H
#define SL_OIP_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The validator remembers where the first this many containers (in document order) end, so that
 * skipping one of them is a lookup; skipping any other scans it. */
#define SL_OIP_JSON_SPANS 48

typedef struct sl_oip_json {
    const uint8_t *s; /* borrowed */
    size_t len;
    size_t root; /* offset of the root value (after any BOM and whitespace) */
    uint32_t n_spans;
    struct {
        uint32_t start, end; /* '[' or '{' and one past its ']' or '}' */
    } spans[SL_OIP_JSON_SPANS];
} sl_oip_json_t;

/* Validates s[0..len) (borrowed; need not be NUL-terminated) as one JSON value and fills j for
 * the cursor helpers. Returns false when sl_json_parse would refuse it; the caller then asks
 * sl_json_parse for the message, so that errors keep their exact wording and byte offsets. */
bool sl_oip__json_validate(sl_oip_json_t *j, const uint8_t *s, size_t len);

/* ---- cursors over a validated document; every position is an offset into j->s ---- */

/* One past the value starting at pos. */
size_t sl_oip__json_skip(const sl_oip_json_t *j, size_t pos);

/* Decodes the string starting at pos (its opening quote) as cJSON does and returns one past its
 * closing quote. *clen receives the length of its C string: the bytes before the first NUL the
 * decoding yields; the first min(*clen, cap) of them are written to out (out may be NULL when
 * cap is 0). */
size_t sl_oip__json_str(const sl_oip_json_t *j, size_t pos, uint8_t *out, size_t cap, size_t *clen);

/* A number as cJSON's strtod reads it: d always; i as well when exact is true (the token is an
 * integer without fraction or exponent whose magnitude fits in an int64_t; "-0" gives 0). */
typedef struct sl_oip_json_num {
    double d;
    int64_t i;
    bool exact;
} sl_oip_json_num_t;

/* Reads the number starting at pos and returns one past it. Integers are read exactly, decimals
 * within Clinger's fast path (digits that make at most 2^53, a power of ten up to 22) with one
 * correctly rounded operation, everything else with strtod_l in the "C" locale; the
 * result is always the double strtod gives. */
size_t sl_oip__json_num(const sl_oip_json_t *j, size_t pos, sl_oip_json_num_t *out);

/* The common case of sl_oip__json_num, inline: a plain integer of at most 18 digits (no
 * fraction, no exponent). Returns false, touching nothing, for any other number. */
static inline bool sl_oip__json_small_int(const sl_oip_json_t *j, size_t pos, int64_t *val,
                                          size_t *end) {
    const uint8_t *s = j->s;
    size_t len = j->len, p = pos;
    bool neg = p < len && s[p] == '-';
    p += neg;
    size_t start = p;
    uint64_t m = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9' && p - start < 18) {
        m = m * 10 + (uint64_t)(s[p] - '0');
        p++;
    }
    if (p == start) return false;
    if (p < len) {
        uint8_t c = s[p];
        if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
            return false;
    }
    *val = neg ? -(int64_t)m : (int64_t)m;
    *end = p;
    return true;
}

static inline size_t sl_oip__json_ws(const sl_oip_json_t *j, size_t pos) {
    while (pos < j->len && j->s[pos] <= 0x20)
        pos++;
    return pos;
}

/* The byte at pos, or 0 past the end (0 is never where a value starts). */
static inline uint8_t sl_oip__json_at(const sl_oip_json_t *j, size_t pos) {
    return pos < j->len ? j->s[pos] : 0;
}

/* Iteration over the array or object at pos: first() gives the first element (an object's first
 * key), next() the one after the element (or the member value) ending at end; both stop on the
 * closing bracket, which done() tells. */
static inline size_t sl_oip__json_first(const sl_oip_json_t *j, size_t pos) {
    return sl_oip__json_ws(j, pos + 1);
}

static inline size_t sl_oip__json_next(const sl_oip_json_t *j, size_t end) {
    size_t p = sl_oip__json_ws(j, end);
    return sl_oip__json_at(j, p) == ',' ? sl_oip__json_ws(j, p + 1) : p;
}

static inline bool sl_oip__json_done(const sl_oip_json_t *j, size_t pos) {
    uint8_t c = sl_oip__json_at(j, pos);
    return c == ']' || c == '}' || c == 0;
}

/* The value of the member whose key ends at key_end (one past its closing quote). */
static inline size_t sl_oip__json_member_value(const sl_oip_json_t *j, size_t key_end) {
    return sl_oip__json_ws(j, sl_oip__json_ws(j, key_end) + 1);
}

#endif
