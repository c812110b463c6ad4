<?php
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
?>
<!doctype html>
<meta charset="utf-8">
<title>Session</title>
<link rel="stylesheet" href="/style.css">
<h1>You have been here <?= (int)$_SESSION['visits'] ?> time(s)</h1>
<p>Served by worker <?= tokio_worker_id() ?>; the session is shared by all workers. <a href="/session.php">Reload</a> · <a href="/">Back</a></p>
