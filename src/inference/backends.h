/* Backends by name: the built-in ones (onnx, xgboost) and those found as shared objects
 * (libsluice_backend_<name>.so) in a backend directory, each checked against the ABI version
 * before use and initialised once. */
#ifndef SL_BACKENDS_H
#define SL_BACKENDS_H

#include "core/buf.h"

#include <sluice/backend.h>

typedef struct sl_backends sl_backends_t;

/* dir may be NULL (built-ins only). */
sl_backends_t *sl_backends_new(const char *dir);
/* Calls backend_fini of every initialised backend, unloads shared objects. */
void sl_backends_free(sl_backends_t *b);

/* The backend named name, initialised on first use; *state receives its backend state. Returns
 * NULL with a message in err ("backend 'foo' not found (built-in: onnx, xgboost; searched
 * DIR)", "backend 'foo' was built for ABI 2.0, this server speaks 1.0", init failures). Any
 * thread (serialised internally). */
const sluice_backend_iface_t *sl_backends_get(sl_backends_t *b, const char *name, void **state,
                                              sl_buf_t *err);

/* Internal, for tests: checks an interface against this server's ABI (MAJOR equal, MINOR not
 * newer, name and required entries present). Returns 0, or SL_EINVAL with the reason appended
 * to err ("backend 'foo' was built for ABI 2.0, this server speaks 1.0"). */
int sl_backends__check_iface(const sluice_backend_iface_t *iface, sl_buf_t *err);

/* The built-in entries, one per backend source file. */
const sluice_backend_iface_t *sl_backend_onnx_entry(void);
const sluice_backend_iface_t *sl_backend_xgboost_entry(void);

#endif
