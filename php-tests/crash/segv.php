<?php
// The worker dies as a segfaulting extension would (SIGSEGV). ?flush=1
// sends some output first, so the stream is already under way.
if (!empty($_GET['flush'])) {
    echo "partial\n";
    flush();
    usleep(100000);
}
posix_kill(getmypid(), SIGSEGV);
echo "never";
