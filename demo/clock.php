<?php
// One 'tick' event a second, for as long as the page is open. The heartbeat
// keeps the request past --request-timeout; when the tab closes, the next
// flush ends the script and frees the worker.
header('Content-Type: text/event-stream');
while (true) {
    echo "event: tick\ndata: " . json_encode(['time' => date('H:i:s')]) . "\n\n";
    flush();
    tokio_request_heartbeat(5);
    sleep(1);
}
