/* Whole-file reads for the engine's loaders (see io.h): open, check it is a regular file within
 * the limit, read it in one go. Paths come from users, so nothing is assumed about the file. */
#include "engine/io.h"
#include "engine/op.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

sl_eng_status_t sl_eng__read_file_raw(const char *path, size_t limit, uint8_t **out, size_t *len,
                                      sl_eng__read_info_t *info) {
    *out = NULL;
    *len = 0;
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f) {
        info->why = SL_ENG__READ_OPEN;
        info->sys_errno = errno;
        return SL_ENG_EIO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        info->why = SL_ENG__READ_NOT_FILE;
        return SL_ENG_EIO;
    }
    info->size = (uint64_t)sb.st_size;
    if (info->size > limit) {
        fclose(f);
        info->why = SL_ENG__READ_TOO_BIG;
        return SL_ENG_ELIMIT;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        info->why = SL_ENG__READ_NOMEM;
        return SL_ENG_ENOMEM;
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        info->why = SL_ENG__READ_SHORT;
        info->got = got;
        return SL_ENG_EIO;
    }
    *out = buf;
    *len = n;
    return SL_ENG_OK;
}

sl_eng_status_t sl_eng__read_file(const char *path, size_t limit, uint8_t **out, size_t *len,
                                  sl_eng_error_t *err) {
    sl_eng__read_info_t in;
    sl_eng_status_t st = sl_eng__read_file_raw(path, limit, out, len, &in);
    switch (in.why) {
    case SL_ENG__READ_OK:
        break;
    case SL_ENG__READ_OPEN:
        return sl_eng_set_error(err, st, "%s: %s", path, strerror(in.sys_errno));
    case SL_ENG__READ_NOT_FILE:
        return sl_eng_set_error(err, st, "%s: not a regular file", path);
    case SL_ENG__READ_TOO_BIG:
        return sl_eng_set_error(err, st, "%s: %lld bytes, over the limit of %zu", path,
                                (long long)in.size, limit);
    case SL_ENG__READ_NOMEM:
        return sl_eng_set_error(err, st, "%s: out of memory (%zu bytes)", path, (size_t)in.size);
    case SL_ENG__READ_SHORT:
        return sl_eng_set_error(err, st, "%s: read %zu of %zu bytes", path, in.got,
                                (size_t)in.size);
    }
    return st;
}
