<?php
// Counts to ?n (default 5), one event per ?ms milliseconds (default 200),
// flushing each. No header(): a request with Accept: text/event-stream
// makes it an SSE response; without, it is a plain streamed response.
$n = (int)($_GET['n'] ?? 5);
$ms = (int)($_GET['ms'] ?? 200);
$start = (int)($_SERVER['HTTP_LAST_EVENT_ID'] ?? 0);
if (isset($_GET['retry'])) {
    echo "retry: " . (int)$_GET['retry'] . "\n\n";
}
for ($i = $start + 1; $i <= $start + $n; $i++) {
    echo "id: $i\ndata: $i\n\n";
    flush();
    if ($i < $start + $n) {
        usleep($ms * 1000);
    }
}
