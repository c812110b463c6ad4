<?php
// header(), header_remove(), http_response_code(), setcookie(), headers_sent().
$before = headers_sent();
http_response_code(201);
header('X-Custom: one');
header('X-Removed: gone');
header_remove('X-Removed');
header('X-Multi: a');
header('X-Multi: b', false);
setcookie('first', '1');
setcookie('second', '2', ['httponly' => true]);
header('Content-Type: text/plain');
echo "before=" . var_export($before, true) . "\n";
// With php.ini's output_buffering the echo above is still buffered in PHP;
// flush() sends it (and the headers) to the client.
flush();
echo "after=" . var_export(headers_sent(), true) . "\n";
