<?php
// Named events with JSON data, a multi-line data field, a retry hint and a
// comment: every field must pass through byte for byte.
header('Content-Type: text/event-stream');
echo "retry: 1500\n\n";
echo ": a comment line\n\n";
echo "event: greeting\nid: g1\ndata: " . json_encode(['hello' => 'world', 'n' => 1]) . "\n\n";
flush();
echo "event: multi\ndata: line one\ndata: line two\n\n";
flush();
echo "data: " . json_encode(['last_event_id' => $_SERVER['HTTP_LAST_EVENT_ID'] ?? null]) . "\n\n";
flush();
