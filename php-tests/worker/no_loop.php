<?php
// Worker script for tests/worker_mode.rs: never reaches its loop.
echo "booted, but no loop\n";
