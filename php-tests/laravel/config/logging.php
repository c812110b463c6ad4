<?php

return [
    'default' => 'errorlog',
    'channels' => [
        // error_log(): the server's log.
        'errorlog' => ['driver' => 'errorlog', 'level' => 'debug'],
    ],
];
