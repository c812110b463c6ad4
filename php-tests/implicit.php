<?php
// ob_implicit_flush(): every echo is sent at once, no flush() needed.
while (ob_get_level()) { ob_end_flush(); }
ob_implicit_flush(true);
echo "first\n";
usleep(1200000);
echo "second\n";
