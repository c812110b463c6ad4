<?php
// Worker script for tests/worker_mode.rs: boots once, then answers each
// request with what it sees, so tests can check nothing carries over.
$boots = 0;
$boots++;
$booted_at = microtime(true);
class Counter { public static int $n = 0; }
$handled = 0;

$handler = function () use (&$handled, $booted_at) {
    global $boots;
    $handled++;
    Counter::$n++;
    $action = $_GET['do'] ?? '';
    switch ($action) {
        case 'throw':
            throw new RuntimeException('boom from the handler');
        case 'fatal':
            undefined_function_here();
            break;
        case 'exit':
            echo "exiting\n";
            exit(0);
        case 'sleep':
            sleep((int)($_GET['s'] ?? 30));
            break;
        case 'stream':
            header('Content-Type: text/event-stream');
            for ($i = 0; $i < 3; $i++) {
                echo "data: $i\n\n";
                flush();
                usleep(200000);
            }
            return;
        case 'set':
            header('X-First: yes');
            header('X-Removed: gone');
            header_remove('X-Removed');
            http_response_code(418);
            ini_set('precision', '3');
            ob_start();
            echo "buffered-unclosed ";
            register_shutdown_function(function () { echo "shutdown-ran "; });
            break;
        case 'session':
            session_start();
            $_SESSION['secret'] = $_GET['v'] ?? 'x';
            break;
    }
    $seen = [
        'pid' => getmypid(),
        'handled' => $handled,
        'static' => Counter::$n,
        'boots' => $boots,
        'get' => $_GET,
        'post' => $_POST,
        'cookie' => $_COOKIE,
        'files' => array_map(fn($f) => $f['name'], $_FILES),
        'request' => $_REQUEST,
        'input' => file_get_contents('php://input'),
        'uri' => $_SERVER['REQUEST_URI'] ?? null,
        'method' => $_SERVER['REQUEST_METHOD'] ?? null,
        'x_test' => $_SERVER['HTTP_X_TEST'] ?? null,
        'headers' => headers_list(),
        'status' => http_response_code(),
        'ob_level' => ob_get_level(),
        'precision' => ini_get('precision'),
        'session_status' => session_status(),
        'session' => $_SESSION ?? null,
        'session_id' => session_id(),
        'last_error' => error_get_last()['message'] ?? null,
    ];
    echo json_encode($seen), "\n";
};

while (spindle_handle_request($handler)) {
    gc_collect_cycles();
}
