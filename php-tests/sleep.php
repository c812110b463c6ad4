<?php
// Sleeps ?ms without output; ?heartbeat=N keeps extending the deadline.
$ms = (int)($_GET['ms'] ?? 1000);
$hb = (int)($_GET['heartbeat'] ?? 0);
$r = null;
for ($slept = 0; $slept < $ms; $slept += 250) {
    usleep(250000);
    if ($hb) { $r = tokio_request_heartbeat($hb); }
}
echo "awake heartbeat=" . var_export($r, true);
