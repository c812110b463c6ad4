<?php
// A script that lies about its Content-Length (issue 9, item 4).
//   ?mode=long   declares 5, sends 10 bytes and then a forged response
//   ?mode=short  declares 100, sends 10 bytes
//   &flush=1     flushes first, so the body goes the streaming way
$mode = $_GET['mode'] ?? 'long';
header('Content-Length: ' . ($mode === 'long' ? 5 : 100));
if (!empty($_GET['flush'])) {
    echo "01";
    flush();
    echo "23456789";
} else {
    echo "0123456789";
}
if ($mode === 'long') {
    echo "HTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 0\r\n\r\n";
}
