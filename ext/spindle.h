/*
 * The contract between Spindle's C SAPI module (ext/spindle.c) and Rust.
 *
 * bindgen reads this header and nothing else: Rust never sees PHP's own
 * headers. Strings cross the boundary as pointer + length pairs; every string
 * in a spindle_request is also NUL-terminated (PHP wants C strings), and the
 * memory stays owned by the Rust caller for the whole of spindle_execute().
 */
#ifndef SPINDLE_H
#define SPINDLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct spindle_str {
    const char *ptr; /* NUL-terminated; NULL when absent */
    size_t len;      /* without the NUL */
} spindle_str;

typedef struct spindle_kv {
    spindle_str key;
    spindle_str value;
} spindle_kv;

/* One HTTP request as PHP sees it. */
typedef struct spindle_request {
    spindle_str method;
    spindle_str request_uri;     /* path and query, as the client sent them */
    spindle_str query_string;    /* without '?', empty when none */
    spindle_str script_filename; /* absolute path of the script to run */
    spindle_str content_type;    /* ptr NULL when the request has none */
    int64_t content_length;      /* -1 when the request has no body */
    spindle_str cookie;          /* the Cookie header; ptr NULL when none */
    spindle_str authorization;   /* the Authorization header; ptr NULL when none */
    const spindle_kv *server_vars; /* $_SERVER entries, in order */
    size_t server_vars_len;
    double request_time;         /* seconds since the epoch, as REQUEST_TIME_FLOAT */
} spindle_request;

/* A list of strings (topics, selectors), borrowed from PHP for one call. */
typedef struct spindle_strs {
    const spindle_str *ptr;
    size_t len;
} spindle_strs;

/* One update for the hub: spindle_publish() / mercure_publish(). */
typedef struct spindle_update {
    spindle_strs topics;  /* the first is canonical, the rest alternates */
    spindle_str data;
    int is_private;
    spindle_str id;       /* ptr NULL: the hub generates one */
    spindle_str type;     /* ptr NULL: none */
    int has_retry;
    int64_t retry;        /* milliseconds, when has_retry */
} spindle_update;

/* A hand-off: spindle_subscribe(). */
typedef struct spindle_handoff {
    spindle_strs topics;        /* selectors to receive */
    spindle_strs private_topics; /* selectors whose private updates may be received */
    spindle_str last_event_id;  /* ptr NULL: no replay */
    int has_retry;
    int64_t retry;              /* milliseconds, when has_retry */
} spindle_handoff;

typedef struct spindle_callbacks spindle_callbacks;

/*
 * Worker mode: runs one request inside the worker script. Given to
 * next_request, which calls it once with the request it received and the
 * callbacks for that request (installed for the call, the worker script's
 * own restored after it). Returns SPINDLE_EXEC_* flags.
 */
typedef int (*spindle_run_fn)(void *arg, const spindle_request *request,
                              const spindle_callbacks *callbacks);

/*
 * What the SAPI calls back into. Set per thread by the worker before it runs
 * a request; every function receives `ctx` unchanged. The functions must not
 * unwind (Rust implements them behind catch_unwind).
 */
struct spindle_callbacks {
    void *ctx;
    /* Script output. Returns 0 when the client is gone (the SAPI then lets
     * PHP handle the aborted connection), 1 otherwise. */
    int (*write)(void *ctx, const char *buf, size_t len);
    /* flush(): hand everything written so far to the client now.
     * Returns 0 when the client is gone. */
    int (*flush)(void *ctx);
    /* One response header line ("Name: value"), in order. */
    void (*header)(void *ctx, const char *line, size_t len);
    /* All headers given; `status` is the HTTP status code.
     * `default_content_type` is 1 when the script set no Content-Type and
     * PHP added its default_mimetype. */
    void (*headers_done)(void *ctx, int status, int default_content_type);
    /* Up to `len` bytes of the request body; 0 at its end. */
    size_t (*read_body)(void *ctx, char *buf, size_t len);
    /* A line for the server log (error_log(), startup and runtime errors). */
    void (*log)(void *ctx, const char *msg, size_t len, int syslog_level);
    /* tokio_request_heartbeat($secs): 1 when the deadline moved, else 0. */
    int (*heartbeat)(void *ctx, int64_t secs);
    /* tokio_finish_request(): end the response, keep running. 1 on success. */
    int (*finish_request)(void *ctx);
    /* tokio_request_id() / tokio_worker_id(). */
    uint64_t (*request_id)(void *ctx);
    uint64_t (*worker_id)(void *ctx);
    /* spindle_publish(): 1 with the update's id in *result, 0 with the
     * reason it was refused. *result points into memory Rust owns, valid
     * until the next callback: copy it at once. */
    int (*publish)(void *ctx, const spindle_update *update, spindle_str *result);
    /* spindle_subscribe(): records the hand-off for the end of the script.
     * 1 when recorded, 0 with the reason in *result (as for publish). */
    int (*subscribe)(void *ctx, const spindle_handoff *handoff, spindle_str *result);
    /* Worker mode, spindle_handle_request(): waits for the next request and
     * runs it with run(arg, ...). 1 when a request was served, 0 when the
     * worker must stop (the master closed the socket). NULL outside worker
     * mode. */
    int (*next_request)(void *ctx, spindle_run_fn run, void *arg);
};

/* Results of spindle_execute(), as bit flags. */
#define SPINDLE_EXEC_FATAL 1          /* a fatal error (or uncaught exception) ended the script */
#define SPINDLE_EXEC_STARTUP_FAILED 2 /* php_request_startup() failed; nothing ran */

/*
 * Starts PHP's module layer: reads php.ini (`ini_path`, or PHP's default
 * search when NULL), applies `ini_entries` ("key=value\n" lines, like the
 * CLI's -d), loads extensions and OPcache. Call once, single-threaded, before
 * forking workers. Returns 0 on success, -1 when PHP's module startup
 * failed, -2 when a configuration file has a syntax error.
 */
int spindle_php_startup(const char *ini_path, const char *ini_entries);

/* Why spindle_php_startup() failed, when it knows: PHP's message for a
 * syntax error in php.ini, a scanned conf.d file or the -d entries, naming
 * the file and line ("syntax error, unexpected ')' in /etc/x.ini on line 2").
 * NULL otherwise. Returns -2 from spindle_php_startup() in that case. */
const char *spindle_php_startup_error(void);

/* phpinfo() prints plain text instead of HTML (for `spindle php-info`).
 * Call before spindle_php_startup(). */
void spindle_set_phpinfo_as_text(int as_text);

/* Shuts PHP's module layer down again. */
void spindle_php_shutdown(void);

/* Installs the callbacks for this thread; NULL removes them. */
void spindle_set_callbacks(const spindle_callbacks *callbacks);

/* Runs one request to its end (shutdown functions included). */
int spindle_execute(const spindle_request *request);

/*
 * Worker mode: runs the worker script (request->script_filename) as one long
 * request, in which spindle_handle_request() serves requests through the
 * callbacks' next_request. Returns as spindle_execute() does, once the
 * script has ended; SPINDLE_EXEC_FATAL also when a request it served ended
 * in a fatal error, which ends the script (see docs/architecture.md).
 */
int spindle_execute_worker(const spindle_request *boot);

/* The SAPI name PHP reports as PHP_SAPI. */
const char *spindle_sapi_name(void);

#endif /* SPINDLE_H */
