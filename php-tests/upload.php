<?php
// Reports every uploaded file; moves the ones named in ?move=field to a temp
// location and reports where, so a test can check move_uploaded_file().
header('Content-Type: application/json');
$out = ['files' => [], 'post' => $_POST];
foreach ($_FILES as $field => $f) {
    $info = [
        'name' => $f['name'],
        'size' => $f['size'],
        'error' => $f['error'],
        'tmp_name' => $f['tmp_name'],
        'is_uploaded_file' => is_uploaded_file($f['tmp_name']),
        'md5' => $f['error'] === UPLOAD_ERR_OK ? md5_file($f['tmp_name']) : null,
    ];
    if (($_GET['move'] ?? '') === $field) {
        $dest = sys_get_temp_dir() . '/spindle-moved-' . bin2hex(random_bytes(6));
        $info['moved'] = move_uploaded_file($f['tmp_name'], $dest);
        $info['moved_md5'] = md5_file($dest);
        unlink($dest);
    }
    $out['files'][$field] = $info;
}
echo json_encode($out);
