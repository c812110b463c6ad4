<?php
// Worker script for tests/worker_mode.rs: fails while booting.
require __DIR__ . '/missing-bootstrap.php';
while (spindle_handle_request(function () { echo "never\n"; })) {
}
