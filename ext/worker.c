/*
 * Worker mode: spindle_handle_request() and the per-request reset around
 * its handler (see docs/architecture.md, "Worker mode").
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
#include <Zend/zend_smart_str.h>
#include <ext/spl/spl_exceptions.h>
#include <ext/standard/basic_functions.h>
#include <ext/standard/php_filestat.h>
#include <ext/standard/url_scanner_ex.h>

#include <sys/stat.h>

/*
 * The worker script runs as one long request whose executor (globals,
 * objects, classes, OPcache'd code) lives as long as the process. Each
 * request it handles gets the per-request layers of php_request_startup()
 * and php_request_shutdown() around the handler: output layer, SAPI state
 * (headers, status, body, uploads), superglobals, ini values, shutdown
 * functions, and the modules that keep request state of their own (session,
 * filter). Between requests the script is back in its boot state: its own
 * $_SERVER, output going to the log. What cannot be undone this way (a
 * fatal error's bailout) ends the script, and with it the process: the
 * master starts a fresh one; so does exit(), which means "stop".
 * docs/architecture.md ("Worker mode") has the reasoning.
 */

/* The worker script's own request while it runs, else NULL. */
static const spindle_request *boot_request;
/* A handler is running: spindle_handle_request() is not re-entrant. */
static int handling;
/* The handler is being unwound because its client went away. */
static int abort_unwinding;
/* The boot's ini values, putenv() and umask() became the baseline requests
 * are reset to (at the first request). */
static int boot_ini_committed;

/* Modules whose request state PHP keeps in module globals: their RSHUTDOWN
 * and RINIT run around each request. The session module is the one that
 * matters (FrankenPHP's GHSA-v3ph-cgqh-r8p5 leaked a session id across
 * requests); filter keeps copies of the request's input arrays. */
static const char *const request_modules[] = {"session", "filter", NULL};

static void modules_request(int startup)
{
    for (const char *const *name = request_modules; *name; name++) {
        zend_module_entry *m = zend_hash_str_find_ptr(&module_registry, *name, strlen(*name));
        if (!m) {
            continue;
        }
        if (startup && m->request_startup_func) {
            m->request_startup_func(m->type, m->module_number);
        } else if (!startup && m->request_shutdown_func) {
            m->request_shutdown_func(m->type, m->module_number);
        }
    }
}

/*
 * ini_set() calls made while the script booted become the values every
 * request starts from: the entries are marked unmodified with their boot
 * value as the original, so zend_ini_deactivate() after a request restores
 * them instead of php.ini's.
 */
static void commit_boot_ini(void)
{
    if (!EG(modified_ini_directives)) {
        return;
    }
    zend_ini_entry *e;
    ZEND_HASH_MAP_FOREACH_PTR(EG(modified_ini_directives), e)
    {
        /* The php.ini value (orig_value) is owned by module startup's
         * memory and shared with the zygote's other children: left as is. */
        e->orig_value = NULL;
        e->modified = 0;
        e->modifiable = e->orig_modifiable;
    }
    ZEND_HASH_FOREACH_END();
    zend_hash_destroy(EG(modified_ini_directives));
    FREE_HASHTABLE(EG(modified_ini_directives));
    EG(modified_ini_directives) = NULL;
}

/*
 * output_add_rewrite_var() and session.use_trans_sid keep their state in the
 * standard module's URL-rewriter globals, which only its RSHUTDOWN clears.
 * Left as is, the rewriter would count as active after
 * php_output_deactivate() removed its output handler: later requests'
 * rewrite variables would be collected (a session id among them) but never
 * applied until, some day, they were applied all together.
 */
static void reset_url_rewriter(url_adapt_state_ex_t *ctx)
{
    smart_str_free(&ctx->result);
    smart_str_free(&ctx->buf);
    smart_str_free(&ctx->tag);
    smart_str_free(&ctx->arg);
    smart_str_free(&ctx->attr_val);
    smart_str_free(&ctx->form_app);
    smart_str_free(&ctx->url_app);
    ctx->active = 0;
    ctx->tag_type = 0;
    ctx->attr_type = 0;
}

/*
 * What the standard module's RSHUTDOWN undoes in the process itself, which
 * outlives the request here: putenv() values (each entry's destructor puts
 * the previous value back), umask(), and the stat cache (a file another
 * process changed since would otherwise answer stale to the next request).
 * At the first request, the boot's putenv() and umask() are kept instead,
 * as its ini values are.
 */
static void reset_process_state(int keep_boot_values)
{
    if (keep_boot_values) {
        /* Forget the entries without restoring; their strings stay, since
         * the environment points into them. */
        dtor_func_t restore = BG(putenv_ht).pDestructor;
        BG(putenv_ht).pDestructor = NULL;
        zend_hash_clean(&BG(putenv_ht));
        BG(putenv_ht).pDestructor = restore;
        BG(umask) = -1;
    } else {
        zend_hash_clean(&BG(putenv_ht));
        if (BG(umask) != -1) {
            umask((mode_t)BG(umask));
            BG(umask) = -1;
        }
    }
    php_clear_stat_cache(0, NULL, 0);
}

static void clear_last_error(void)
{
    if (PG(last_error_message)) {
        zend_string_release(PG(last_error_message));
        PG(last_error_message) = NULL;
    }
    if (PG(last_error_file)) {
        zend_string_release(PG(last_error_file));
        PG(last_error_file) = NULL;
    }
    PG(last_error_type) = 0;
    PG(last_error_lineno) = 0;
}

/* The per-request half of php_request_shutdown(): the executor stays. */
static void end_request_state(void)
{
    zend_try { php_output_end_all(); }
    zend_end_try();
    zend_try { modules_request(0); }
    zend_end_try();
    /* $_SESSION is a reference to the session module's array: the module's
     * RSHUTDOWN drops its own, the symbol table would keep the data. */
    zend_hash_str_del(&EG(symbol_table), "_SESSION", sizeof("_SESSION") - 1);
    zend_try { php_output_deactivate(); }
    zend_end_try();
    reset_url_rewriter(&BG(url_adapt_session_ex));
    reset_url_rewriter(&BG(url_adapt_output_ex));
    /* php://input's temporary stream is a resource of the request; the
     * executor that would free it never ends. */
    if (SG(request_info).request_body) {
        php_stream_close(SG(request_info).request_body);
        SG(request_info).request_body = NULL;
    }
    zend_try { sapi_deactivate(); }
    zend_end_try();
    /* sapi_deactivate() freed these without forgetting them. */
    SG(request_info).auth_user = NULL;
    SG(request_info).auth_password = NULL;
    SG(request_info).auth_digest = NULL;
    SG(request_info).content_type_dup = NULL;
    SG(request_info).current_user = NULL;
    reset_process_state(!boot_ini_committed);
    if (boot_ini_committed) {
        zend_ini_deactivate();
    } else {
        commit_boot_ini();
        boot_ini_committed = 1;
    }
    clear_last_error();
}

/* The per-request half of php_request_startup(), for `req`. */
static int begin_request_state(const spindle_request *req, const spindle_callbacks *callbacks)
{
    int rc = SUCCESS;
    spindle_cb = callbacks;
    spindle_set_request_info(req);
    zend_try
    {
        php_output_activate();
        PG(header_is_being_sent) = 0;
        PG(connection_status) = PHP_CONNECTION_NORMAL;
        sapi_activate();
        if (PG(expose_php)) {
            sapi_add_header(SAPI_PHP_VERSION_HEADER, sizeof(SAPI_PHP_VERSION_HEADER) - 1, 1);
        }
        if (PG(output_handler) && PG(output_handler)[0]) {
            zval oh;
            ZVAL_STRING(&oh, PG(output_handler));
            php_output_start_user(&oh, 0, PHP_OUTPUT_HANDLER_STDFLAGS);
            zval_ptr_dtor(&oh);
        } else if (PG(output_buffering)) {
            php_output_start_user(NULL, PG(output_buffering) > 1 ? PG(output_buffering) : 0,
                                  PHP_OUTPUT_HANDLER_STDFLAGS);
        } else if (PG(implicit_flush)) {
            php_output_set_implicit_flush(1);
        }
        /* $_FILES is only ever added to by the POST parser: start empty. */
        zval_ptr_dtor_nogc(&PG(http_globals)[TRACK_VARS_FILES]);
        ZVAL_UNDEF(&PG(http_globals)[TRACK_VARS_FILES]);
        zend_auto_global *ag;
        ZEND_HASH_MAP_FOREACH_PTR(CG(auto_globals), ag)
        {
            if (ag->name == ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_ENV)) {
                continue; /* the environment does not change */
            }
            if (ag->name == ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_SERVER) ||
                (ag->name == ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_REQUEST) &&
                 zend_hash_exists(&EG(symbol_table), ag->name)) ||
                (!ag->jit && ag->auto_global_callback)) {
                /* $_GET, $_POST, $_COOKIE, $_FILES, $_SERVER, and $_REQUEST
                 * once compiled code uses it (else its JIT arming fills it
                 * when code that does is compiled). $GLOBALS is the
                 * script's own. */
                ag->armed = ag->auto_global_callback(ag->name);
            }
        }
        ZEND_HASH_FOREACH_END();
        modules_request(1);
        SG(sapi_started) = 1;
    }
    zend_catch { rc = FAILURE; }
    zend_end_try();
    EG(exit_status) = 0;
    return rc;
}

/*
 * A client that leaves ends its script unless ignore_user_abort() is set.
 * PHP does that with a bailout, a longjmp that abandons the handler's frames
 * and would cost the worker script its process. Inside a handler the same
 * end comes as exit() does in PHP 8: an unwind_exit "exception" that the VM
 * unwinds cleanly (frames and their variables released, no catch or finally
 * runs), which run_handler then takes off so the loop goes on.
 */
void spindle_connection_aborted(void)
{
    if (!handling || PG(ignore_user_abort) || !EG(current_execute_data)) {
        php_handle_aborted_connection();
        return;
    }
    PG(connection_status) = PHP_CONNECTION_ABORTED;
    php_output_set_status(PHP_OUTPUT_DISABLED);
    if (!EG(exception)) {
        zend_throw_unwind_exit();
        abort_unwinding = 1;
    }
}

/* What spindle_handle_request() hands to next_request's run. */
struct handler_call {
    zend_fcall_info *fci;
    zend_fcall_info_cache *fcc;
    int bailed; /* a fatal error (or an abort) unwound the handler */
    int exited; /* the handler called exit() */
};

static int run_handler(void *arg, const spindle_request *req, const spindle_callbacks *callbacks)
{
    struct handler_call *call = arg;
    const spindle_callbacks *boot_cb = spindle_cb;
    /* Live across zend_try's setjmp and written before it: volatile, so a
     * bailout's longjmp cannot bring back a stale register copy. */
    volatile int result = 0;

    end_request_state();
    if (begin_request_state(req, callbacks) == FAILURE) {
        result = SPINDLE_EXEC_STARTUP_FAILED;
    } else {
        /* Shutdown functions registered by this request run at its end;
         * the boot's wait for the script's. */
        HashTable *boot_shutdown = BG(user_shutdown_function_names);
        BG(user_shutdown_function_names) = NULL;
        zend_execute_data *frame = EG(current_execute_data);
        zend_set_timeout(INI_INT("max_execution_time"), 0);
        handling = 1;
        abort_unwinding = 0;
        zend_try
        {
            zval retval;
            ZVAL_UNDEF(&retval);
            call->fci->retval = &retval;
            call->fci->params = NULL;
            call->fci->param_count = 0;
            zend_call_function(call->fci, call->fcc);
            zval_ptr_dtor(&retval);
            if (EG(exception)) {
                if (abort_unwinding && zend_is_unwind_exit(EG(exception))) {
                    /* Unwound for a client that left: the loop goes on. */
                    zend_clear_exception();
                } else if (zend_is_unwind_exit(EG(exception)) || zend_is_graceful_exit(EG(exception))) {
                    zend_clear_exception();
                    call->exited = 1;
                } else {
                    /* As a classic script's uncaught exception: "PHP Fatal
                     * error: Uncaught ..." logged, 500 unless output was
                     * sent, exit status 255; E_DONT_BAIL keeps the loop. */
                    zend_exception_error(EG(exception), E_ERROR);
                }
            }
        }
        zend_catch
        {
            EG(current_execute_data) = frame;
            call->bailed = 1;
        }
        zend_end_try();
        handling = 0;
        abort_unwinding = 0;
        if (call->bailed) {
            /* A fatal error: the script ends with this request, as a classic
             * script ends at one. The shutdown functions it registered while
             * booting run now, first (registration order), while the
             * response is still open, and not again at its end. Frameworks
             * answer a fatal error there (Laravel's HandleExceptions,
             * Symfony's ErrorHandler); later, their page would go to the
             * log and the client would get an empty 500. (Memory exhaustion
             * in Debian's PHP 8.2.36 is reported at the next safe point and
             * unwinds like exit(), without a bailout: not covered here.) */
            HashTable *request_shutdown = BG(user_shutdown_function_names);
            BG(user_shutdown_function_names) = boot_shutdown;
            php_call_shutdown_functions();
            if (EG(exception)) {
                zend_exception_error(EG(exception), E_ERROR);
            }
            php_free_shutdown_functions();
            BG(user_shutdown_function_names) = request_shutdown;
        }
        php_call_shutdown_functions();
        if (EG(exception)) {
            zend_exception_error(EG(exception), E_ERROR);
        }
        php_free_shutdown_functions();
        /* The boot's, unless they ran above. */
        BG(user_shutdown_function_names) = call->bailed ? NULL : boot_shutdown;
        zend_unset_timeout();
        if (EG(exit_status) == 255 || call->bailed) {
            result |= SPINDLE_EXEC_FATAL;
        }
    }
    end_request_state();
    begin_request_state(boot_request, boot_cb);
    return result;
}

PHP_FUNCTION(spindle_handle_request)
{
    zend_fcall_info fci;
    zend_fcall_info_cache fcc;
    ZEND_PARSE_PARAMETERS_START(1, 1)
    Z_PARAM_FUNC(fci, fcc)
    ZEND_PARSE_PARAMETERS_END();
    if (!boot_request || !spindle_cb || !spindle_cb->next_request) {
        zend_throw_exception(spl_ce_RuntimeException,
                             "spindle_handle_request() works only in a worker script (spindle serve --worker)", 0);
        RETURN_THROWS();
    }
    if (handling) {
        zend_throw_exception(spl_ce_RuntimeException, "spindle_handle_request() called from its own handler", 0);
        RETURN_THROWS();
    }
    /* Waiting for a request is not execution time. */
    zend_unset_timeout();
    struct handler_call call = {&fci, &fcc, 0, 0};
    int served = spindle_cb->next_request(spindle_cb->ctx, run_handler, &call);
    if (call.bailed) {
        /* The handler's frames were abandoned mid-way: end the script as
         * PHP ends a fatal one; the worker process goes with it. */
        zend_bailout();
    }
    if (call.exited) {
        zend_throw_unwind_exit();
        RETURN_THROWS();
    }
    RETURN_BOOL(served);
}

int spindle_execute_worker(const spindle_request *boot)
{
    boot_request = boot;
    int result = spindle_execute(boot);
    boot_request = NULL;
    return result;
}
