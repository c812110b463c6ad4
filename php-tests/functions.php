<?php
header('Content-Type: application/json');
echo json_encode([
    'request_id' => tokio_request_id(),
    'worker_id' => tokio_worker_id(),
    'info' => tokio_server_info(),
    'heartbeat_ok' => tokio_request_heartbeat(5),
    'heartbeat_too_long' => tokio_request_heartbeat(100000),
]);
