/*
 * Spindle's SAPI module: PHP's side of the contract in spindle.h.
 *
 * Every SAPI callback is a trampoline into the callback table that the Rust
 * worker installs for its thread. The C here only translates between PHP's
 * globals and plain pointer + length pairs; buffering, IPC and policy live in
 * Rust (src/php, src/worker).
 */
#include "spindle.h"
#include "internal.h"

#include <main/php.h>
#include <main/SAPI.h>
#include <main/php_main.h>
#include <main/php_output.h>
#include <main/php_variables.h>
#include <Zend/zend_exceptions.h>
#include <Zend/zend_ini.h>
#include <Zend/zend_ini_scanner.h>
#include <Zend/zend_smart_str.h>
#include <ext/spl/spl_exceptions.h>
#include <ext/standard/info.h>

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#ifndef SPINDLE_VERSION
#define SPINDLE_VERSION "0.0.0"
#endif

/*
 * Why "fpm-fcgi": PHP 8.2's OPcache enables itself only for a fixed list of
 * SAPI names (ZendAccelerator.c, accel_find_sapi). Spindle plays FPM's role,
 * so PHP_SAPI reports FPM's name: applications that special-case FPM (for
 * example to call fastcgi_finish_request()) keep working, and none mistakes
 * Spindle for the CLI or the built-in development server ("cli-server").
 */
static const char sapi_name[] = "fpm-fcgi";

__thread const spindle_callbacks *spindle_cb;
__thread const spindle_request *spindle_current;
/* The script called header("Content-Type: ...") in this request. */
static __thread int content_type_set;
static char *startup_ini_entries;

/* Set by php_init_config() (main/php_ini.c); exported, but in no header. */
extern PHPAPI char *php_ini_opened_path;
extern PHPAPI char *php_ini_scanned_path;

static size_t sapi_spindle_ub_write(const char *str, size_t len)
{
    if (spindle_cb && !spindle_cb->write(spindle_cb->ctx, str, len)) {
        /* The client is gone: PHP marks the connection aborted and, unless
         * ignore_user_abort() is set, ends the script (shutdown functions
         * still run), exactly as under FPM. */
        spindle_connection_aborted();
    }
    return len;
}

/*
 * Sends what php.ini's output_buffering buffer (Debian sets 4096) holds, so
 * that echo + flush() reaches the client even with it on: under FPM that
 * flush() sends nothing, the classic SSE pitfall. Buffers the script opened
 * itself with ob_start() sit above it and are its own business: they stay
 * untouched (ob_flush() + flush() moves their content through). Order is
 * kept: everything in the bottom buffer is older than what is above it.
 */
static void drain_default_buffer(void)
{
    int level = php_output_get_level();
    if (level < 1) {
        return;
    }
    php_output_handler **base = (php_output_handler **)zend_stack_base(&OG(handlers));
    if (!base || !base[0] || !zend_string_equals_literal(base[0]->name, "default output handler")) {
        return;
    }
    if (level == 1) {
        php_output_flush();
        return;
    }
    /* Lift the script's buffers off the stack, flush the bottom one
     * straight to the SAPI, put them back as they were. */
    php_output_handler *bottom = base[0];
    php_output_handler **above = emalloc(sizeof(*above) * (size_t)(level - 1));
    for (int i = level - 2; i >= 0; i--) {
        above[i] = *(php_output_handler **)zend_stack_top(&OG(handlers));
        zend_stack_del_top(&OG(handlers));
    }
    php_output_handler *active = OG(active);
    OG(active) = bottom;
    php_output_flush();
    OG(active) = active;
    for (int i = 0; i < level - 1; i++) {
        zend_stack_push(&OG(handlers), &above[i]);
    }
    efree(above);
}

static void sapi_spindle_flush(void *server_context)
{
    (void)server_context;
    if (!spindle_cb || !spindle_current) {
        return;
    }
    drain_default_buffer();
    if (!SG(headers_sent)) {
        sapi_send_headers();
    }
    if (!spindle_cb->flush(spindle_cb->ctx)) {
        spindle_connection_aborted();
    }
}

static int sapi_spindle_header_handler(sapi_header_struct *header, sapi_header_op_enum op,
                                       sapi_headers_struct *headers)
{
    /* PHP keeps the header list itself; Spindle reads it in send_headers.
     * This only notes whether the script chose a Content-Type: PHP adds its
     * default one through here too, but only while send_default_content_type
     * is still set (a script's Content-Type clears it first). */
    (void)op;
    if (!headers->send_default_content_type && header->header_len >= 13 &&
        strncasecmp(header->header, "content-type:", 13) == 0) {
        content_type_set = 1;
    }
    return SAPI_HEADER_ADD;
}

static int is_header(const sapi_header_struct *h, const char *name, size_t len)
{
    return h->header_len > len && strncasecmp(h->header, name, len) == 0;
}

static int sapi_spindle_send_headers(sapi_headers_struct *headers)
{
    if (!spindle_cb) {
        return SAPI_HEADER_SENT_SUCCESSFULLY;
    }
    int code = headers->http_response_code ? headers->http_response_code : 200;
    /* As FPM's send_headers (fpm_main.c), which applications written for
     * CGI and FPM rely on (phpMyAdmin sends "Status: 401 Unauthorized"):
     * a CGI "Status:" header is never sent on; the first one sets the
     * status when the script set no other (PHP only parses "HTTP/1.x NNN"
     * lines itself). A 304 carries no Content-Type. */
    int status_seen = code != 200;
    zend_llist_position pos;
    sapi_header_struct *h = zend_llist_get_first_ex(&headers->headers, &pos);
    while (h) {
        if (is_header(h, "status:", 7)) {
            if (!status_seen) {
                status_seen = 1;
                int parsed = atoi(h->header + 7);
                if (parsed >= 100 && parsed <= 999) {
                    code = parsed;
                }
            }
        } else if (!(headers->http_response_code == 304 && is_header(h, "content-type:", 13))) {
            spindle_cb->header(spindle_cb->ctx, h->header, h->header_len);
        }
        h = zend_llist_get_next_ex(&headers->headers, &pos);
    }
    spindle_cb->headers_done(spindle_cb->ctx, code, !content_type_set);
    return SAPI_HEADER_SENT_SUCCESSFULLY;
}

static size_t sapi_spindle_read_post(char *buf, size_t len)
{
    return spindle_cb ? spindle_cb->read_body(spindle_cb->ctx, buf, len) : 0;
}

static char *sapi_spindle_read_cookies(void)
{
    /* PHP copies the string before parsing it. */
    return spindle_current ? (char *)spindle_current->cookie.ptr : NULL;
}

static void sapi_spindle_register_variables(zval *track_vars_array)
{
    if (!spindle_current) {
        return;
    }
    for (size_t i = 0; i < spindle_current->server_vars_len; i++) {
        const spindle_kv *kv = &spindle_current->server_vars[i];
        php_register_variable_safe(kv->key.ptr, kv->value.ptr, kv->value.len, track_vars_array);
    }
}

static void sapi_spindle_log_message(const char *msg, int syslog_level)
{
    if (spindle_cb) {
        spindle_cb->log(spindle_cb->ctx, msg, strlen(msg), syslog_level);
    } else {
        /* Module startup, before any worker exists: stderr is the log. */
        fprintf(stderr, "php: %s\n", msg);
    }
}

static zend_result sapi_spindle_get_request_time(double *request_time)
{
    if (!spindle_current) {
        return FAILURE;
    }
    *request_time = spindle_current->request_time;
    return SUCCESS;
}

static char *sapi_spindle_getenv(const char *name, size_t name_len)
{
    /* As under FPM, getenv() sees the request's variables first; PHP falls
     * back to the process environment when this returns NULL. */
    if (!spindle_current) {
        return NULL;
    }
    for (size_t i = 0; i < spindle_current->server_vars_len; i++) {
        const spindle_kv *kv = &spindle_current->server_vars[i];
        if (kv->key.len == name_len && memcmp(kv->key.ptr, name, name_len) == 0) {
            return (char *)kv->value.ptr;
        }
    }
    return NULL;
}

static int sapi_spindle_startup(sapi_module_struct *module)
{
    return php_module_startup(module, NULL);
}

static int sapi_spindle_activate(void)
{
    return SUCCESS;
}

static int sapi_spindle_deactivate(void)
{
    return SUCCESS;
}

/* ---- PHP functions: tokio_* ---- */

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tokio_request_heartbeat, 0, 0, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, time, IS_LONG, 0, "10")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tokio_finish_request, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tokio_int, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tokio_server_info, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

PHP_FUNCTION(tokio_request_heartbeat)
{
    zend_long secs = 10;
    ZEND_PARSE_PARAMETERS_START(0, 1)
    Z_PARAM_OPTIONAL
    Z_PARAM_LONG(secs)
    ZEND_PARSE_PARAMETERS_END();
    RETURN_BOOL(spindle_cb && secs > 0 && spindle_cb->heartbeat(spindle_cb->ctx, (int64_t)secs));
}

PHP_FUNCTION(tokio_finish_request)
{
    ZEND_PARSE_PARAMETERS_NONE();
    if (!spindle_cb) {
        RETURN_FALSE;
    }
    /* As FPM's fastcgi_finish_request(): end every output buffer so their
     * content reaches the client, send the headers, then close the response.
     * Later output is discarded. */
    php_output_end_all();
    if (!SG(headers_sent)) {
        sapi_send_headers();
    }
    RETURN_BOOL(spindle_cb->finish_request(spindle_cb->ctx));
}

PHP_FUNCTION(tokio_request_id)
{
    ZEND_PARSE_PARAMETERS_NONE();
    RETURN_LONG(spindle_cb ? (zend_long)spindle_cb->request_id(spindle_cb->ctx) : 0);
}

PHP_FUNCTION(tokio_worker_id)
{
    ZEND_PARSE_PARAMETERS_NONE();
    RETURN_LONG(spindle_cb ? (zend_long)spindle_cb->worker_id(spindle_cb->ctx) : 0);
}

PHP_FUNCTION(tokio_server_info)
{
    ZEND_PARSE_PARAMETERS_NONE();
    array_init(return_value);
    add_assoc_string(return_value, "server", "Spindle");
    add_assoc_string(return_value, "version", SPINDLE_VERSION);
    add_assoc_string(return_value, "sapi", (char *)sapi_name);
    add_assoc_long(return_value, "worker_id", spindle_cb ? (zend_long)spindle_cb->worker_id(spindle_cb->ctx) : 0);
    add_assoc_long(return_value, "worker_pid", (zend_long)getpid());
    add_assoc_long(return_value, "request_id", spindle_cb ? (zend_long)spindle_cb->request_id(spindle_cb->ctx) : 0);
}


/* ---- PHP functions: the hub (spindle_publish, spindle_subscribe) ---- */

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_spindle_publish, 0, 1, IS_STRING, 0)
ZEND_ARG_TYPE_MASK(0, topics, MAY_BE_STRING | MAY_BE_ARRAY, NULL)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, data, IS_STRING, 0, "\'\'")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, private, _IS_BOOL, 0, "false")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, id, IS_STRING, 1, "null")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, type, IS_STRING, 1, "null")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, retry, IS_LONG, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_spindle_subscribe, 0, 1, IS_VOID, 0)
ZEND_ARG_TYPE_MASK(0, topics, MAY_BE_STRING | MAY_BE_ARRAY, NULL)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, options, IS_ARRAY, 0, "[]")
ZEND_END_ARG_INFO()

static spindle_str str_of(const zend_string *s)
{
    spindle_str v = {s ? ZSTR_VAL(s) : NULL, s ? ZSTR_LEN(s) : 0};
    return v;
}

/* The strings of a string|array value as a list (emalloc'd, the caller
 * frees it). FAILURE, with a TypeError thrown, when an element is not a
 * string: a topic is never guessed from an int or an object. */
static zend_result str_list(zend_string *one, HashTable *many, const char *what, spindle_strs *out)
{
    out->len = 0;
    if (one) {
        spindle_str *v = emalloc(sizeof *v);
        *v = str_of(one);
        out->ptr = v;
        out->len = 1;
        return SUCCESS;
    }
    uint32_t count = zend_hash_num_elements(many);
    spindle_str *v = safe_emalloc(count ? count : 1, sizeof *v, 0);
    zval *z;
    ZEND_HASH_FOREACH_VAL(many, z)
    {
        ZVAL_DEREF(z);
        if (Z_TYPE_P(z) != IS_STRING) {
            efree(v);
            out->ptr = NULL;
            zend_type_error("%s must contain only strings, %s given", what, zend_zval_type_name(z));
            return FAILURE;
        }
        v[out->len++] = str_of(Z_STR_P(z));
    }
    ZEND_HASH_FOREACH_END();
    out->ptr = v;
    return SUCCESS;
}

static void throw_runtime(spindle_str why)
{
    zend_throw_exception_ex(spl_ce_RuntimeException, 0, "%.*s", (int)why.len, why.ptr ? why.ptr : "");
}

/* spindle_publish() and mercure_publish() (FrankenPHP's name and argument
 * order, so applications written for its hub run unchanged). */
PHP_FUNCTION(spindle_publish)
{
    zend_string *topic = NULL, *data = NULL, *id = NULL, *type = NULL;
    HashTable *topics = NULL;
    bool is_private = false;
    zend_long retry = 0;
    bool retry_null = true;
    ZEND_PARSE_PARAMETERS_START(1, 6)
    Z_PARAM_ARRAY_HT_OR_STR(topics, topic)
    Z_PARAM_OPTIONAL
    Z_PARAM_STR(data)
    Z_PARAM_BOOL(is_private)
    Z_PARAM_STR_OR_NULL(id)
    Z_PARAM_STR_OR_NULL(type)
    Z_PARAM_LONG_OR_NULL(retry, retry_null)
    ZEND_PARSE_PARAMETERS_END();
    if (!spindle_cb) {
        zend_throw_exception(spl_ce_RuntimeException, "the hub is only reachable during a request", 0);
        RETURN_THROWS();
    }
    spindle_update u = {0};
    if (str_list(topic, topics, "spindle_publish(): Argument #1 ($topics)", &u.topics) == FAILURE) {
        RETURN_THROWS();
    }
    u.data = str_of(data);
    u.is_private = is_private;
    u.id = str_of(id);
    u.type = str_of(type);
    u.has_retry = !retry_null;
    u.retry = (int64_t)retry;
    spindle_str result = {NULL, 0};
    int ok = spindle_cb->publish(spindle_cb->ctx, &u, &result);
    efree((void *)u.topics.ptr);
    if (!ok) {
        throw_runtime(result);
        RETURN_THROWS();
    }
    RETURN_STRINGL(result.ptr ? result.ptr : "", result.len);
}

/* The request's Last-Event-ID header, the default replay point. */
static spindle_str request_last_event_id(void)
{
    spindle_str none = {NULL, 0};
    if (!spindle_current) {
        return none;
    }
    for (size_t i = 0; i < spindle_current->server_vars_len; i++) {
        const spindle_kv *kv = &spindle_current->server_vars[i];
        if (kv->key.len == 18 && memcmp(kv->key.ptr, "HTTP_LAST_EVENT_ID", 18) == 0) {
            return kv->value;
        }
    }
    return none;
}

PHP_FUNCTION(spindle_subscribe)
{
    zend_string *topic = NULL;
    HashTable *topics = NULL, *options = NULL;
    ZEND_PARSE_PARAMETERS_START(1, 2)
    Z_PARAM_ARRAY_HT_OR_STR(topics, topic)
    Z_PARAM_OPTIONAL
    Z_PARAM_ARRAY_HT(options)
    ZEND_PARSE_PARAMETERS_END();
    if (!spindle_cb) {
        zend_throw_exception(spl_ce_RuntimeException, "the hub is only reachable during a request", 0);
        RETURN_THROWS();
    }
    spindle_handoff h = {0};
    h.last_event_id = request_last_event_id();
    zend_string *key;
    zval *val;
    if (options) {
        ZEND_HASH_FOREACH_STR_KEY_VAL(options, key, val)
        {
            ZVAL_DEREF(val);
            if (key && zend_string_equals_literal(key, "private")) {
                if (h.private_topics.ptr) {
                    efree((void *)h.private_topics.ptr);
                    h.private_topics.ptr = NULL;
                }
                if (Z_TYPE_P(val) != IS_STRING && Z_TYPE_P(val) != IS_ARRAY) {
                    zend_type_error("spindle_subscribe(): option \"private\" must be of type string|array, %s given",
                                    zend_zval_type_name(val));
                    RETURN_THROWS();
                }
                if (str_list(Z_TYPE_P(val) == IS_STRING ? Z_STR_P(val) : NULL,
                             Z_TYPE_P(val) == IS_ARRAY ? Z_ARRVAL_P(val) : NULL,
                             "spindle_subscribe(): option \"private\"", &h.private_topics) == FAILURE) {
                    RETURN_THROWS();
                }
            } else if (key && zend_string_equals_literal(key, "last_event_id")) {
                if (Z_TYPE_P(val) == IS_STRING) {
                    h.last_event_id = str_of(Z_STR_P(val));
                } else if (Z_TYPE_P(val) != IS_NULL) {
                    zend_type_error("spindle_subscribe(): option \"last_event_id\" must be of type ?string, %s given",
                                    zend_zval_type_name(val));
                    goto fail;
                }
            } else if (key && zend_string_equals_literal(key, "retry")) {
                if (Z_TYPE_P(val) == IS_LONG) {
                    h.has_retry = 1;
                    h.retry = (int64_t)Z_LVAL_P(val);
                } else if (Z_TYPE_P(val) != IS_NULL) {
                    zend_type_error("spindle_subscribe(): option \"retry\" must be of type ?int, %s given",
                                    zend_zval_type_name(val));
                    goto fail;
                }
            } else {
                if (key) {
                    zend_argument_value_error(2, "has an unknown option \"%s\"", ZSTR_VAL(key));
                } else {
                    zend_argument_value_error(2, "must have string keys");
                }
                goto fail;
            }
        }
        ZEND_HASH_FOREACH_END();
    }
    if (str_list(topic, topics, "spindle_subscribe(): Argument #1 ($topics)", &h.topics) == FAILURE) {
        goto fail;
    }
    spindle_str result = {NULL, 0};
    int ok = spindle_cb->subscribe(spindle_cb->ctx, &h, &result);
    efree((void *)h.topics.ptr);
    if (h.private_topics.ptr) {
        efree((void *)h.private_topics.ptr);
    }
    if (!ok) {
        throw_runtime(result);
    }
    return;
fail:
    if (h.private_topics.ptr) {
        efree((void *)h.private_topics.ptr);
    }
    RETURN_THROWS();
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_spindle_handle_request, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, handler, IS_CALLABLE, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry spindle_functions[] = {
    ZEND_FE(tokio_request_heartbeat, arginfo_tokio_request_heartbeat)
    ZEND_FE(tokio_finish_request, arginfo_tokio_finish_request)
    ZEND_NAMED_FE(fastcgi_finish_request, ZEND_FN(tokio_finish_request), arginfo_tokio_finish_request)
    ZEND_NAMED_FE(frankenphp_finish_request, ZEND_FN(tokio_finish_request), arginfo_tokio_finish_request)
    ZEND_FE(tokio_request_id, arginfo_tokio_int)
    ZEND_FE(tokio_worker_id, arginfo_tokio_int)
    ZEND_FE(tokio_server_info, arginfo_tokio_server_info)
    ZEND_FE(spindle_publish, arginfo_spindle_publish)
    ZEND_NAMED_FE(mercure_publish, ZEND_FN(spindle_publish), arginfo_spindle_publish)
    ZEND_FE(spindle_subscribe, arginfo_spindle_subscribe)
    ZEND_FE(spindle_handle_request, arginfo_spindle_handle_request)
    ZEND_NAMED_FE(frankenphp_handle_request, ZEND_FN(spindle_handle_request), arginfo_spindle_handle_request)
    ZEND_FE_END
};

static sapi_module_struct spindle_sapi_module = {
    (char *)sapi_name,                /* name: see sapi_name above */
    "Spindle",                        /* pretty_name, shown by phpinfo() */
    sapi_spindle_startup,             /* startup: php_module_startup */
    php_module_shutdown_wrapper,      /* shutdown */
    sapi_spindle_activate,            /* activate: per-request state lives in Rust */
    sapi_spindle_deactivate,          /* deactivate */
    sapi_spindle_ub_write,            /* ub_write: output -> Rust buffer */
    sapi_spindle_flush,               /* flush: flush() -> client, now */
    NULL,                             /* get_stat: PHP stats the script itself */
    sapi_spindle_getenv,              /* getenv: request variables first */
    php_error,                        /* sapi_error */
    sapi_spindle_header_handler,      /* header_handler: PHP keeps the list */
    sapi_spindle_send_headers,        /* send_headers: status + list -> Rust */
    NULL,                             /* send_header: unused, send_headers does all */
    sapi_spindle_read_post,           /* read_post: request body (memfd or inline) */
    sapi_spindle_read_cookies,        /* read_cookies: the Cookie header */
    sapi_spindle_register_variables,  /* register_server_variables: $_SERVER */
    sapi_spindle_log_message,         /* log_message: error_log() -> server log */
    sapi_spindle_get_request_time,    /* get_request_time: when the master got it */
    NULL,                             /* terminate_process */
    STANDARD_SAPI_MODULE_PROPERTIES
};

/* ---- Configuration errors at startup ---- */

/*
 * PHP reads php.ini during module startup but ignores a syntax error in it:
 * it prints "PHP:  syntax error ... in FILE on line N" to stderr and starts
 * with whatever came before the error (issue 9, item 12). php-fpm -t reports
 * the same error and exits; so does Spindle. After startup, every ini file
 * PHP read (and the -d entries) is parsed again, with errors routed through
 * zend_error so the message can be kept and returned.
 */
static char startup_error[1024];

static void record_error(int type, zend_string *file, const uint32_t line, zend_string *message)
{
    (void)type;
    (void)file;
    (void)line;
    if (!startup_error[0]) {
        snprintf(startup_error, sizeof startup_error, "%s", ZSTR_VAL(message));
    }
}

/* zend_parse_ini_* callback: the values were applied at startup already. */
static void ignore_entry(zval *arg1, zval *arg2, zval *arg3, int type, void *arg)
{
    (void)arg1;
    (void)arg2;
    (void)arg3;
    (void)type;
    (void)arg;
}

/* 0 when the file parses; otherwise startup_error holds PHP's message. */
static int check_ini_file(const char *path)
{
    /* A FILE*, as php_init_config() uses: PHP's streams need request
     * state that does not exist between module startup and a request. */
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return 0; /* PHP could not read it either, and said so */
    }
    zend_file_handle fh;
    zend_stream_init_fp(&fh, fp, path);
    void (*saved)(int, zend_string *, const uint32_t, zend_string *) = zend_error_cb;
    zend_error_cb = record_error;
    int rc = zend_parse_ini_file(&fh, 0, ZEND_INI_SCANNER_NORMAL, ignore_entry, NULL);
    zend_error_cb = saved;
    zend_destroy_file_handle(&fh);
    return rc == SUCCESS ? 0 : -1;
}

static int check_ini_entries(const char *entries)
{
    char *copy = estrdup(entries);
    void (*saved)(int, zend_string *, const uint32_t, zend_string *) = zend_error_cb;
    zend_error_cb = record_error;
    int rc = zend_parse_ini_string(copy, 0, ZEND_INI_SCANNER_NORMAL, ignore_entry, NULL);
    zend_error_cb = saved;
    efree(copy);
    if (rc != SUCCESS) {
        char msg[sizeof startup_error];
        snprintf(msg, sizeof msg, "-d: %s", startup_error);
        memcpy(startup_error, msg, sizeof startup_error);
    }
    return rc == SUCCESS ? 0 : -1;
}

static int is_ini_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && strcmp(e->d_name + n - 4, ".ini") == 0;
}

/* The .ini files of each directory in `dirs` (":"-separated, as
 * PHP_INI_SCAN_DIR), in the order PHP reads them (php_init_config). */
static int check_scan_dirs(const char *dirs)
{
    char *list = estrdup(dirs);
    char *save = NULL;
    int rc = 0;
    for (char *dir = strtok_r(list, ":", &save); dir && rc == 0; dir = strtok_r(NULL, ":", &save)) {
        struct dirent **names = NULL;
        int n = scandir(dir, &names, is_ini_file, alphasort);
        for (int i = 0; i < n; i++) {
            char path[MAXPATHLEN];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = check_ini_file(path);
            }
            free(names[i]);
        }
        free(names);
    }
    efree(list);
    return rc;
}

/* php.ini, each .ini file in the scan directories, then the -d entries. */
static int check_configuration(void)
{
    if (php_ini_opened_path && check_ini_file(php_ini_opened_path) != 0) {
        return -1;
    }
    /* Not php_ini_scanned_files: PHP lists only the files that parsed. */
    if (php_ini_scanned_path && check_scan_dirs(php_ini_scanned_path) != 0) {
        return -1;
    }
    if (startup_ini_entries && check_ini_entries(startup_ini_entries) != 0) {
        return -1;
    }
    return 0;
}

const char *spindle_php_startup_error(void)
{
    return startup_error[0] ? startup_error : NULL;
}

int spindle_php_startup(const char *ini_path, const char *ini_entries)
{
#ifdef ZEND_SIGNALS
    zend_signal_startup();
#endif
    sapi_startup(&spindle_sapi_module);
    spindle_sapi_module.php_ini_ignore_cwd = 1;
    if (ini_path) {
        spindle_sapi_module.php_ini_path_override = strdup(ini_path);
    }
    if (ini_entries && *ini_entries) {
        /* Must outlive module startup; freed in spindle_php_shutdown. */
        startup_ini_entries = strdup(ini_entries);
        spindle_sapi_module.ini_entries = startup_ini_entries;
    }
    spindle_sapi_module.additional_functions = spindle_functions;
    if (spindle_sapi_module.startup(&spindle_sapi_module) == FAILURE) {
        return -1;
    }
    if (check_configuration() != 0) {
        return -2;
    }
    return 0;
}

void spindle_set_phpinfo_as_text(int as_text)
{
    spindle_sapi_module.phpinfo_as_text = as_text;
}

void spindle_php_shutdown(void)
{
    php_module_shutdown();
    sapi_shutdown();
    free(startup_ini_entries);
    startup_ini_entries = NULL;
}

void spindle_set_callbacks(const spindle_callbacks *callbacks)
{
    spindle_cb = callbacks;
}

const char *spindle_sapi_name(void)
{
    return sapi_name;
}

/* Points PHP's request globals at `req`, before sapi_activate() reads them. */
void spindle_set_request_info(const spindle_request *req)
{
    spindle_current = req;
    content_type_set = 0;
    SG(server_context) = (void *)req;
    SG(request_info).request_method = req->method.ptr;
    SG(request_info).request_uri = (char *)req->request_uri.ptr;
    SG(request_info).query_string = (char *)req->query_string.ptr;
    SG(request_info).path_translated = (char *)req->script_filename.ptr;
    SG(request_info).content_type = req->content_type.ptr;
    SG(request_info).content_length = req->content_length;
    SG(request_info).cookie_data = NULL;
    SG(request_info).proto_num = 1001;
    SG(request_info).auth_user = NULL;
    SG(request_info).auth_password = NULL;
    SG(request_info).auth_digest = NULL;
    SG(request_info).content_type_dup = NULL;
    SG(sapi_headers).http_response_code = 200;
    if (req->authorization.ptr) {
        /* Fills PHP_AUTH_USER / PHP_AUTH_PW / PHP_AUTH_DIGEST. */
        php_handle_auth_data(req->authorization.ptr);
    }
}

int spindle_execute(const spindle_request *req)
{
    int result = 0;

    spindle_set_request_info(req);
    if (php_request_startup() == FAILURE) {
        SG(server_context) = NULL;
        spindle_current = NULL;
        return SPINDLE_EXEC_STARTUP_FAILED;
    }
    EG(exit_status) = 0;

    zend_file_handle file;
    zend_stream_init_filename(&file, req->script_filename.ptr);
    php_execute_script(&file);
    zend_destroy_file_handle(&file);
    if (EG(exit_status) == 255) {
        result |= SPINDLE_EXEC_FATAL;
    }

    /* Runs shutdown functions and ends the output buffers: output continues. */
    php_request_shutdown(NULL);
    if (EG(exit_status) == 255) {
        result |= SPINDLE_EXEC_FATAL;
    }

    SG(server_context) = NULL;
    spindle_current = NULL;
    return result;
}
