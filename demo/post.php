<?php
// Publishes one message to every open tab of live.php.
if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    header('Allow: POST');
    exit("POST a 'text' field.\n");
}
$text = trim((string)($_POST['text'] ?? ''));
if ($text === '' || mb_strlen($text) > 200) {
    http_response_code(400);
    exit("The text must be 1 to 200 characters.\n");
}
$id = spindle_publish(
    'urn:spindle-demo:wall',
    json_encode(['text' => $text, 'time' => date('H:i:s')]),
    type: 'message',
);
header('Content-Type: application/json');
echo json_encode(['id' => $id]);
