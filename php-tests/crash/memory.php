<?php
// Exhausts memory_limit: a PHP fatal error, not a crash.
ini_set('memory_limit', '32M');
$a = [];
while (true) { $a[] = str_repeat('x', 1 << 20); }
