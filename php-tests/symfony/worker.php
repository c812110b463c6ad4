<?php
// Worker script: boots the same app once, then serves requests in a loop.
use Symfony\Component\HttpFoundation\Request;

$kernel = require __DIR__ . '/app.php';
$request = $response = null;
$handler = static function () use ($kernel, &$request, &$response) {
    $request = Request::createFromGlobals();
    $response = $kernel->handle($request);
    $response->send();
};
while (spindle_handle_request($handler)) {
    $kernel->terminate($request, $response);
    gc_collect_cycles();
}
