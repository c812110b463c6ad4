<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
header('Content-Type: application/json');
echo json_encode(['n' => $_SESSION['n'], 'pid' => getmypid(), 'id' => session_id()]);
