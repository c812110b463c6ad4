<?php
// A job reporting its progress: 0..100 % over about five seconds.
header('Content-Type: text/event-stream');
for ($i = 0; $i <= 50; $i++) {
    echo "event: progress\ndata: " . json_encode(['percent' => $i * 2]) . "\n\n";
    flush();
    usleep(100000);
}
echo "event: done\ndata: {}\n\n";
