<?php echo getmypid(), ' ', posix_getuid(), ' ', tokio_worker_id();
