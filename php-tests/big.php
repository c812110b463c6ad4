<?php
// A large response without flush(): must arrive complete. With ?progress=NAME
// the script writes how many MiB it has produced to a temp file after each
// MiB, so a test can see whether it is held back by a stalled client.
$n = (int)($_GET['kb'] ?? 1024);
$progress = isset($_GET['progress']) ? sys_get_temp_dir() . '/' . basename($_GET['progress']) : null;
$line = str_repeat('x', 1023) . "\n";
for ($i = 0; $i < $n; $i++) {
    echo $line;
    if ($progress !== null && $i % 1024 == 1023) {
        file_put_contents($progress, (string)(($i + 1) / 1024));
    }
}
