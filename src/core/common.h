/* Shared basics of the runtime: status codes (one X-macro table), assertions, allocation that
 * aborts on out-of-memory (server policy), and a borrowed string slice. Every core module
 * includes this. */
#ifndef SL_COMMON_H
#define SL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Status codes: 0 is success, every error is negative. "Again" and "declined" are not errors
 * but outcomes event-driven code must tell apart (nginx's NGX_AGAIN / NGX_DECLINED). */
#define SL_ERRNO_MAP(X)                                                                            \
    X(AGAIN, -1, "try again")                                                                      \
    X(DECLINED, -2, "declined")                                                                    \
    X(NOMEM, -10, "out of memory")                                                                 \
    X(INVAL, -11, "invalid argument")                                                              \
    X(RANGE, -12, "value out of range")                                                            \
    X(IO, -13, "input/output error")                                                               \
    X(NOENT, -14, "not found")                                                                     \
    X(PARSE, -15, "parse error")                                                                   \
    X(LIMIT, -16, "limit exceeded")                                                                \
    X(TIMEOUT, -17, "timed out")                                                                   \
    X(CLOSED, -18, "connection closed")                                                            \
    X(PROTO, -19, "protocol error")                                                                \
    X(EXISTS, -20, "already exists")                                                               \
    X(UNSUPPORTED, -21, "not supported")                                                           \
    X(CANCELED, -22, "canceled")                                                                   \
    X(CONNREFUSED, -23, "connection refused")                                                      \
    X(ADDRINUSE, -24, "address already in use")                                                    \
    X(RESOLVE, -25, "name resolution failed")

enum sl_status {
    SL_OK = 0,
#define SL__ERR_ENUM(name, code, msg) SL_E##name = (code),
    SL_ERRNO_MAP(SL__ERR_ENUM)
#undef SL__ERR_ENUM
};

/* A static, human-readable message for a status code (never NULL). */
const char *sl_strerror(int status);

/* Broken invariants abort with file:line; bad input must never reach one of these. */
#define SL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) sl__assert_fail(#cond, __FILE__, __LINE__);                                   \
    } while (0)
__attribute__((noreturn)) void sl__assert_fail(const char *expr, const char *file, int line);

/* Allocation for server code: out of memory aborts (Redis' zmalloc policy), so callers never
 * check for NULL. Free with free(). */
void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/* A borrowed, not necessarily NUL-terminated byte range. */
typedef struct sl_str {
    const char *ptr;
    size_t len;
} sl_str_t;

#define SL_STR(lit) ((sl_str_t){(lit), sizeof(lit) - 1})
/* The range of a NUL-terminated string (borrowed). */
static inline sl_str_t sl_str_c(const char *s) {
    return (sl_str_t){s, strlen(s)};
}
bool sl_str_eq(sl_str_t a, const char *lit);
bool sl_str_ieq(sl_str_t a, const char *lit); /* ASCII case-insensitive */
/* Levenshtein distance between the NUL-terminated strings a and b (both borrowed), for "did you
 * mean" suggestions; SIZE_MAX when either is longer than 64 bytes. */
size_t sl_str_edit_distance(const char *a, const char *b);

#define SL_ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define SL_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* 64-bit FNV-1a, incremental: h = sl_fnv64(SL_FNV64_INIT, data, n), then more calls to
 * continue. sl_mix64 is MurmurHash3's fmix64 finaliser: FNV's high bits mix poorly for short
 * inputs, so finish with it before using high bits (shards, ranges). Both are frozen: sticky
 * traffic assignments in every replica depend on them. */
#define SL_FNV64_INIT 0xcbf29ce484222325ull
static inline uint64_t sl_fnv64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
static inline uint64_t sl_mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The bits of a double, and back: for doubles kept in atomic 64-bit integers. */
static inline uint64_t sl_double_bits(double d) {
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}
static inline double sl_bits_double(uint64_t u) {
    double d;
    __builtin_memcpy(&d, &u, sizeof d);
    return d;
}

/* Monotonic and wall clocks. */
uint64_t sl_now_ns(void);       /* CLOCK_MONOTONIC */
uint64_t sl_now_ms(void);       /* CLOCK_MONOTONIC */
uint64_t sl_wall_time_ns(void); /* CLOCK_REALTIME, Unix epoch */

/* Fills buf with cryptographically secure random bytes (getrandom); aborts if the kernel cannot. */
void sl_random_bytes(void *buf, size_t n);
/* A fast per-thread pseudo-random number (xorshift, seeded from sl_random_bytes). */
uint64_t sl_rand64(void);

#endif
