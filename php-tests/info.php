<?php
// Everything a test may want to check about the request, as JSON.
header('Content-Type: application/json');
echo json_encode([
    'sapi' => PHP_SAPI,
    'server' => $_SERVER,
    'get' => $_GET,
    'post' => $_POST,
    'cookie' => $_COOKIE,
    'request' => $_REQUEST,
    'files' => $_FILES,
    'input' => file_get_contents('php://input'),
    'opcache' => function_exists('opcache_get_status') ? (opcache_get_status(false)['opcache_enabled'] ?? false) : false,
    'cwd' => getcwd(),
    'pid' => getmypid(),
    'getenv_method' => getenv('REQUEST_METHOD'),
], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES);
