<?php
// Worker script for tests/worker_mode.rs: boots once, then answers each
// request with what it sees (as JSON), so the tests can check that nothing
// one request did carries into the next, and that what should persist does.

// Boot: ini values and shutdown functions of the boot belong to the script.
ini_set('user_agent', 'set-at-boot');
putenv('SPINDLE_TEST_BOOT_ENV=boot');
register_shutdown_function(function () {
    echo "boot-shutdown-function-ran\n";
});
echo "booting\n"; // no client yet: goes to the server log

class Counter
{
    public static int $n = 0;
}
$handled = 0;
$last_upload = null;

$handler = function () use (&$handled, &$last_upload) {
    $handled++;
    Counter::$n++;
    $upload_left = $last_upload !== null && file_exists($last_upload);
    $last_upload = null;
    switch ($_GET['do'] ?? '') {
        case 'throw':
            echo "partial output\n";
            throw new RuntimeException('boom from the handler');
        case 'fatal':
            trigger_error('a fatal error in the handler', E_USER_ERROR);
            break;
        case 'exit':
            echo "exiting\n";
            exit(0);
        case 'sleep':
            sleep(30);
            break;
        case 'stream':
            // The second event waits for the test to have seen the first.
            header('Content-Type: text/event-stream');
            echo "data: first\n\n";
            flush();
            $flag = $_GET['flag'] ?? '';
            for ($i = 0; $i < 200 && !file_exists($flag); $i++) {
                usleep(50000);
            }
            echo "data: second\n\n";
            return;
        case 'forever':
            // Streams until the client leaves (at most 10 s). With a `note`
            // path, writes there how the request ended.
            $note = $_GET['note'] ?? '';
            if (isset($_GET['ignore'])) {
                ignore_user_abort(true);
            }
            register_shutdown_function(function () use ($note) {
                if ($note !== '') {
                    file_put_contents($note, 'shutdown:' . connection_status() . "\n", FILE_APPEND);
                }
            });
            header('Content-Type: text/event-stream');
            for ($i = 0; $i < 200; $i++) {
                echo "data: $i\n\n";
                flush();
                if (connection_aborted()) {
                    // Only reached with ignore_user_abort(true).
                    file_put_contents($note, "noticed\n", FILE_APPEND);
                    return;
                }
                usleep(50000);
            }
            return;
        case 'pollute':
            $_SERVER['LEAK'] = 'server';
            $_GET['leak'] = 'get';
            $_POST['leak'] = 'post';
            $_COOKIE['leak'] = 'cookie';
            $_REQUEST['leak'] = 'request';
            $_FILES['leak'] = ['name' => 'leak'];
            break;
        case 'set':
            header('X-First: yes');
            header('X-Removed: gone');
            header_remove('X-Removed');
            header_remove('X-Powered-By');
            http_response_code(418);
            ini_set('precision', '3');
            ini_set('user_agent', 'set-by-request');
            putenv('SPINDLE_TEST_REQUEST_ENV=first');
            putenv('SPINDLE_TEST_BOOT_ENV=changed');
            umask(0077);
            ob_start();
            echo "buffered-unclosed\n";
            register_shutdown_function(function () {
                echo "request-shutdown-function-ran\n";
            });
            trigger_error('a warning of the first request', E_USER_WARNING);
            break;
        case 'session':
            session_start();
            $_SESSION['secret'] = $_GET['v'] ?? 'x';
            break;
        case 'resume':
            session_start();
            break;
        case 'rewrite':
            if (isset($_GET['v'])) {
                output_add_rewrite_var($_GET['v'], 'yes');
            }
            echo '<form action="page.php"></form>', "\n";
            break;
        case 'upload':
            $last_upload = $_FILES['up']['tmp_name'] ?? null;
            break;
    }
    echo json_encode([
        'pid' => getmypid(),
        'handled' => $handled,
        'static' => Counter::$n,
        'get' => $_GET,
        'post' => $_POST,
        'cookie' => $_COOKIE,
        'files' => array_map(fn ($f) => $f['name'], $_FILES),
        'upload_left' => $upload_left,
        'request' => $_REQUEST,
        'server_leak' => $_SERVER['LEAK'] ?? null,
        'input' => file_get_contents('php://input'),
        'uri' => $_SERVER['REQUEST_URI'] ?? null,
        'method' => $_SERVER['REQUEST_METHOD'] ?? null,
        'x_test' => $_SERVER['HTTP_X_TEST'] ?? null,
        'headers' => headers_list(),
        'status' => http_response_code(),
        'ob_level' => ob_get_level(),
        'precision' => ini_get('precision'),
        'user_agent' => ini_get('user_agent'),
        'env_request' => getenv('SPINDLE_TEST_REQUEST_ENV'),
        'env_boot' => getenv('SPINDLE_TEST_BOOT_ENV'),
        'umask' => umask(),
        'session_status' => session_status(),
        'session' => $_SESSION ?? null,
        'session_id' => session_id(),
        'last_error' => error_get_last()['message'] ?? null,
    ]), "\n";
};

while (spindle_handle_request($handler)) {
    gc_collect_cycles();
}
