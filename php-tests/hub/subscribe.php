<?php
// Hands the request over to the hub: the user is "checked" here (a real
// application would look at its session), then the master streams.
$topics = $_GET['topic'] ?? 'https://example.com/news';
$options = [];
if (isset($_GET['private'])) {
    $options['private'] = $_GET['private'];
}
if (isset($_GET['last_event_id'])) {
    $options['last_event_id'] = $_GET['last_event_id'];
}
if (isset($_GET['retry'])) {
    $options['retry'] = (int) $_GET['retry'];
}
setcookie('session', 'abc123');
header('Access-Control-Allow-Origin: https://app.example');
header('X-Worker-Pid: ' . getmypid());
if (isset($_GET['flush'])) {
    header('Content-Type: text/event-stream');
    echo ": before the hand-off\n\n";
    flush();
}
if (isset($_GET['echo'])) {
    echo ": echoed\n\n";
}
try {
    spindle_subscribe($topics, $options);
} catch (Throwable $e) {
    http_response_code(400);
    header('Content-Type: text/plain');
    echo get_class($e), ': ', $e->getMessage();
}
