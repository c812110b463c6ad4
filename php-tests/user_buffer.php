<?php
// A buffer the script opened itself is its own: flush() does not empty it,
// ob_flush() + flush() does.
ob_start();
echo "buffered\n";
flush();
usleep(800000);
echo "released\n";
ob_flush();
flush();
usleep(800000);
echo "end\n";
