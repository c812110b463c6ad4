<?php
// Never ends on its own: an event every ?ms ms (default 100) until the client
// goes away. Records its own end in ?marker (a file name under the temp dir)
// from a shutdown function, so a test can see the worker was released.
header('Content-Type: text/event-stream');
$marker = isset($_GET['marker']) ? sys_get_temp_dir() . '/' . basename($_GET['marker']) : null;
if ($marker) {
    register_shutdown_function(function () use ($marker) {
        file_put_contents($marker, 'aborted=' . connection_aborted());
    });
}
if (!empty($_GET['ignore_abort'])) {
    ignore_user_abort(true);
}
$ms = (int)($_GET['ms'] ?? 100);
for ($i = 1; ; $i++) {
    echo "id: $i\ndata: tick $i\n\n";
    flush();
    if (connection_aborted()) {
        // Only reached with ignore_user_abort(true).
        file_put_contents($marker . '.ignored', 'still running after abort');
        break;
    }
    usleep($ms * 1000);
}
