<?php
// What PHP read of the request body, hashed as a stream so a large body
// does not need memory_limit (tests/http_limits.rs).
header('Content-Type: application/json');
$ctx = hash_init('md5');
$length = hash_update_stream($ctx, fopen('php://input', 'rb'));
echo json_encode([
    'md5' => hash_final($ctx),
    'length' => $length,
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
]);
