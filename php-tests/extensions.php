<?php
header('Content-Type: application/json');
$want = ['Zend OPcache', 'curl', 'intl', 'mbstring', 'xml', 'zip', 'gd', 'mysqli', 'pdo_mysql', 'pgsql', 'pdo_pgsql', 'sqlite3', 'pdo_sqlite', 'bcmath', 'redis'];
echo json_encode(array_combine($want, array_map('extension_loaded', $want)));
