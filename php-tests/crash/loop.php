<?php
// Never ends and never outputs: only the request timeout stops it.
set_time_limit(0);
while (true) { usleep(10000); }
