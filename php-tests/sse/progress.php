<?php
// A progress stream: 0..100 % in ?steps steps, ?ms apart, then "done".
header('Content-Type: text/event-stream');
$steps = max(1, (int)($_GET['steps'] ?? 20));
$ms = (int)($_GET['ms'] ?? 150);
for ($i = 0; $i <= $steps; $i++) {
    $pct = intdiv($i * 100, $steps);
    echo "event: progress\ndata: " . json_encode(['percent' => $pct, 'time' => date('H:i:s')]) . "\n\n";
    flush();
    usleep($ms * 1000);
}
echo "event: done\ndata: {}\n\n";
