<?php
// Publishes without end, flushing now and then: the worker spends most of
// its time waiting for the master's answers, which is where a client's
// abort arrives. It must end the script, not be lost.
header('Content-Type: text/event-stream');
for ($i = 0; ; $i++) {
    spindle_publish('https://example.com/loop', "n $i");
    if ($i % 20 === 0) {
        echo ": $i\n\n";
        flush();
    }
}
