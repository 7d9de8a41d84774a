/* Private to the engine's matrix and shape kernels (ops_linalg.c, ops_shape.c, la_*.c): the
 * strided copy every data-movement op reduces to (Transpose, Slice, Expand, DepthToSpace), and
 * the small checks those kernels share (dtypes they can move, int tensors read as shapes,
 * element counts that must not overflow). Nothing outside src/engine includes this header. */
#ifndef SL_ENGINE_LA_LAYOUT_H
#define SL_ENGINE_LA_LAYOUT_H

#include "engine/op.h"

/* Copies a strided view of src into the dense row-major dst. dims[nd] are the view's dims,
 * strides[nd] the step in ELEMENTS of src for each (may be 0 to broadcast, or negative); src
 * points at the view's first element. esize is the element size in bytes. Neither pointer is
 * kept. Fast paths: contiguous rows (memcpy), broadcast rows (fill), and blocked 2-D transposes
 * when the second-to-last view dim is the contiguous one. nd may be 0 (one element). */
void sl_la__copy_strided(void *dst, const void *src, size_t esize, int nd, const int64_t *dims,
                         const int64_t *strides);

/* Row-major strides in elements of a tensor with dims[nd]. */
void sl_la__strides(int nd, const int64_t *dims, int64_t *strides);

/* The element size of t's dtype when a data-movement kernel can copy it; otherwise 0 after
 * setting err (node named): strings and float16 are SL_ENG_EUNSUPPORTED. what names the input
 * ("input 0"). */
size_t sl_la__movable(const sl_node_t *n, const sl_tensor_t *t, const char *what,
                      sl_eng_error_t *err);

/* Reads the values of an int64 or int32 tensor t of at most max elements (1-D or a scalar) into
 * vals; *count receives how many. Errors (naming the node and what) for another dtype, more
 * than 1 dim, more than max values, or values not available (data NULL). */
sl_eng_status_t sl_la__read_ints(const sl_node_t *n, const sl_tensor_t *t, const char *what,
                                 int64_t max, int64_t *vals, int *count, sl_eng_error_t *err);

/* One scalar (a tensor with exactly one element) of an integer or float dtype as double / as
 * int64. False for other dtypes or sizes. */
bool sl_la__scalar_f64(const sl_tensor_t *t, double *out);
bool sl_la__scalar_i64(const sl_tensor_t *t, int64_t *out);

/* Checks that dims[nd] are non-negative and their product (the element count) does not
 * overflow int64 nor, times esize, size_t. Returns SL_ENG_OK or an error naming the node. */
sl_eng_status_t sl_la__check_dims(const sl_node_t *n, int nd, const int64_t *dims, size_t esize,
                                  sl_eng_error_t *err);

/* Sets output o to dtype dt and dims[nd] after sl_la__check_dims (errors name the node). */
sl_eng_status_t sl_la__set_out(const sl_node_t *n, sl_tensor_t *o, sl_dtype_t dt, int nd,
                               const int64_t *dims, sl_eng_error_t *err);

/* Writes n copies of the esize bytes at val to dst (doubling memcpy: log2(n) calls); n <= 0
 * writes nothing. */
void sl_la__fill(void *dst, const void *val, size_t esize, int64_t n);

/* Product of dims[from..to) (1 for an empty range); callers have checked the dims. */
int64_t sl_la__prod(const int64_t *dims, int from, int to);

/* Checks a node's arity: min_in..max_in inputs of which the first min_in are present (not
 * omitted), and min_out..max_out outputs. Errors name the node and the expected counts. */
sl_eng_status_t sl_la__arity(const sl_node_t *n, const sl_tensor_t *const *in, int n_in, int min_in,
                             int max_in, int n_out, int min_out, int max_out, sl_eng_error_t *err);

/* The run of every op whose output holds the input's bytes unchanged (Reshape, Flatten, Squeeze,
 * Unsqueeze): copies input 0 into output 0 unless they already share memory. */
sl_eng_status_t sl_la__copy_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k);

/* Formats dims as "[2, 3, 4]" into buf (for error messages); returns buf. */
const char *sl_la__dims_str(int nd, const int64_t *dims, char *buf, size_t len);

#endif
