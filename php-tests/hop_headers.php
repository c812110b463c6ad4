<?php
// What DokuWiki's lib/exe/taskrunner.php sends before it goes on indexing:
// headers that belong to one connection, not to the response.
header('Content-Type: image/gif');
header('Content-Length: 3');
header('Connection: Close');
header('Keep-Alive: timeout=1');
header('Upgrade: h2c');
echo "GIF";
