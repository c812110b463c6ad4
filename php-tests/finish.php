<?php
// fastcgi_finish_request(): the client gets the response now; the script
// goes on and leaves a marker file later.
echo "response done";
fastcgi_finish_request();
echo "discarded";
usleep(1000000);
file_put_contents(sys_get_temp_dir() . '/' . basename($_GET['marker'] ?? 'spindle-finish'), 'after');
