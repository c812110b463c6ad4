<?php $info = tokio_server_info(); ?>
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Spindle demo</title>
<link rel="stylesheet" href="/style.css">
<h1>Spindle is serving PHP <?= htmlspecialchars(PHP_VERSION) ?></h1>
<p>This page ran in worker <?= (int)$info['worker_id'] ?> (pid <?= (int)$info['worker_pid'] ?>),
request <?= (int)$info['request_id'] ?>, SAPI <code><?= htmlspecialchars(PHP_SAPI) ?></code>,
OPcache <?= (function_exists('opcache_get_status') && (opcache_get_status(false)['opcache_enabled'] ?? false)) ? 'on' : 'off' ?>.</p>
<ul>
  <li><a href="/live.php">Live: a wall every open tab sees (the hub) and a streamed progress bar</a></li>
  <li><a href="/form.php">A form with a file upload</a></li>
  <li><a href="/session.php">A session counter</a></li>
  <li><a href="/phpinfo.php">phpinfo()</a></li>
</ul>
<p>The files are in <code><?= htmlspecialchars($_SERVER['DOCUMENT_ROOT']) ?></code>; edit them and reload.</p>
