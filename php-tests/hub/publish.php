<?php
// Publishes what the request asks for; answers the id, or the exception.
$r = $_POST + $_GET;
try {
    echo spindle_publish(
        $r['topic'] ?? [],
        $r['data'] ?? '',
        !empty($r['private']),
        $r['id'] ?? null,
        $r['type'] ?? null,
        isset($r['retry']) ? (int) $r['retry'] : null,
    );
} catch (Throwable $e) {
    http_response_code(400);
    echo get_class($e), ': ', $e->getMessage();
}
