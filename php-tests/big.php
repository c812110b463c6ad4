<?php
// A large response without flush(): must arrive complete.
$n = (int)($_GET['kb'] ?? 1024);
$line = str_repeat('x', 1023) . "\n";
for ($i = 0; $i < $n; $i++) { echo $line; }
