/* The scheduler of one model version: Triton's dynamic batcher (preferred sizes, max queue
 * delay, FIFO per priority level, queue policies with timeouts and a maximum size) in front of
 * N instances, each executing on its own thread. Without dynamic batching every request is
 * its own batch (still queued, so instances are never executed concurrently). */
#ifndef SL_SCHEDULER_H
#define SL_SCHEDULER_H

#include "oip/oip_types.h"
#include "inference/model_config.h"
#include "inference/stats.h"

#include <sluice/backend.h>

typedef struct sl_sched sl_sched_t;

typedef struct sl_sched_cfg {
    const char *model_name; /* borrowed for the scheduler's life */
    const char *version;
    const sl_model_config_t *cfg;     /* borrowed; batching policy, max_batch_size */
    const sluice_backend_iface_t *be; /* borrowed */
    void *const *instances;           /* backend instance states (borrowed, n_instances) */
    uint32_t n_instances;
    sl_model_stats_t *stats; /* borrowed */
} sl_sched_cfg_t;

/* Starts one execution thread per instance. Never fails except on thread creation (NULL, with
 * a message in err). */
sl_sched_t *sl_sched_new(const sl_sched_cfg_t *c, char *err, size_t err_len);

/* Queues a request validated by sl_batch_validate (ownership passes: it will be completed
 * exactly once). A full queue completes it with SL_INFER_OVERLOADED; a scheduler that is
 * shutting down with SL_INFER_UNAVAILABLE. Any thread. */
void sl_sched_submit(sl_sched_t *s, sl_infer_request_t *req);

/* Requests queued and not yet executing. */
uint32_t sl_sched_queue_depth(sl_sched_t *s);

/* Stops taking requests, lets every queued request finish (or time out), joins the threads and
 * frees the scheduler. The backend instances are the caller's to free afterwards. */
void sl_sched_free(sl_sched_t *s);

#endif
