<?php
// Headers that CGI and FPM give a meaning (fpm_main.c's send_headers):
// "Status:" sets the status unless the script set one, and is not sent on;
// a 304 carries no Content-Type.
switch ($_GET['case'] ?? '') {
    case 'status':
        header('Status: 404 Not Found');
        echo "not here";
        break;
    case 'both': // phpMyAdmin's HTTP authentication
        header('HTTP/1.1 401 Unauthorized');
        header('Status: 401 Unauthorized');
        header('WWW-Authenticate: Basic realm="test"');
        break;
    case 'set':
        http_response_code(403);
        header('Status: 500 Internal Server Error');
        break;
    case '304': // DokuWiki's fetch.php
        header('Content-Type: image/png');
        header('ETag: "x"');
        http_response_code(304);
        break;
}
