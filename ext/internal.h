/*
 * What ext/spindle.c and ext/worker.c share. Not part of the contract with
 * Rust: bindgen reads spindle.h only.
 */
#ifndef SPINDLE_INTERNAL_H
#define SPINDLE_INTERNAL_H

#include "spindle.h"

#include <main/php.h>

/* The callbacks and the request of this thread, while PHP runs one. */
extern __thread const spindle_callbacks *spindle_cb;
extern __thread const spindle_request *spindle_current;

/* Points PHP's request globals at `req`, before sapi_activate() reads them. */
void spindle_set_request_info(const spindle_request *req);

/* The client went away: php_handle_aborted_connection(), except inside a
 * worker script's handler, where the handler is unwound instead (worker.c). */
void spindle_connection_aborted(void);

/* spindle_handle_request() / frankenphp_handle_request(), in worker.c. */
PHP_FUNCTION(spindle_handle_request);

#endif /* SPINDLE_INTERNAL_H */
