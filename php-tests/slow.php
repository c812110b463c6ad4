<?php
// Echoes, flushes, sleeps ?ms, echoes again. ?heartbeat=N calls
// tokio_request_heartbeat(N) every 500 ms of the sleep.
echo "first\n";
flush();
$ms = (int)($_GET['ms'] ?? 1000);
$hb = (int)($_GET['heartbeat'] ?? 0);
$slept = 0;
while ($slept < $ms) {
    $step = min(500, $ms - $slept);
    usleep($step * 1000);
    $slept += $step;
    if ($hb) {
        tokio_request_heartbeat($hb);
    }
}
echo "second\n";
