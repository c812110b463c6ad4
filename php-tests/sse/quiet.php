<?php
// One event, then ?quiet seconds of silence (the server's keep-alive comments
// fill it), then a last event.
header('Content-Type: text/event-stream');
echo "data: first\n\n";
flush();
sleep((int)($_GET['quiet'] ?? 3));
echo "data: last\n\n";
