<?php
// A front controller, as Laravel's and Symfony's public/index.php.
header('Content-Type: application/json');
echo json_encode([
    'front' => true,
    'script_name' => $_SERVER['SCRIPT_NAME'],
    'path_info' => $_SERVER['PATH_INFO'] ?? null,
    'request_uri' => $_SERVER['REQUEST_URI'],
    'php_self' => $_SERVER['PHP_SELF'],
]);
