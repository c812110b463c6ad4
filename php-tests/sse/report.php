<?php
// Browser tests POST their findings here; the test reads the file.
$name = basename($_GET['file'] ?? 'spindle-report');
file_put_contents(sys_get_temp_dir() . '/' . $name, file_get_contents('php://input'));
echo "ok";
