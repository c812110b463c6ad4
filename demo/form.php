<?php
$result = null;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $f = $_FILES['upload'] ?? null;
    $result = [
        'name' => $_POST['name'] ?? '',
        'file' => $f && $f['error'] === UPLOAD_ERR_OK
            ? sprintf('%s, %d bytes, sha1 %s', $f['name'], $f['size'], sha1_file($f['tmp_name']))
            : ($f ? 'upload error ' . $f['error'] : 'no file'),
    ];
}
?>
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Form and upload</title>
<link rel="stylesheet" href="/style.css">
<h1>Form and upload</h1>
<form method="post" enctype="multipart/form-data" class="card">
  <p><label>Your name <input name="name" required></label></p>
  <p><label>A file <input type="file" name="upload"></label>
     (PHP's limit: <?= htmlspecialchars(ini_get('upload_max_filesize')) ?>)</p>
  <p><button>Send</button></p>
</form>
<?php if ($result): ?>
<div class="card" id="result">
  <p>Hello, <strong><?= htmlspecialchars($result['name']) ?></strong>.</p>
  <p>File: <?= htmlspecialchars($result['file']) ?></p>
</div>
<?php endif ?>
<p><a href="/">Back</a></p>
