<?php
// The worker is killed outright, as by the OOM killer or an extension's exit().
posix_kill(getmypid(), SIGKILL);
echo "never";
