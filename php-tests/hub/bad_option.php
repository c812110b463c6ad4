<?php
// An option spindle_subscribe() does not know is a mistake, said at once.
try {
    spindle_subscribe('https://example.com/news', ['privat' => 'x']);
} catch (ValueError $e) {
    http_response_code(400);
    echo 'ValueError: ', $e->getMessage();
}
