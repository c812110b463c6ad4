<?php
// The wall's event stream. A real application would check its user here
// (session, cookie, database) before subscribing; this demo only counts
// visits in the session to show that the script runs as usual. When the
// script ends, Spindle's master keeps the connection and streams every
// update on the topic, replaying what the browser missed after a
// reconnect (Last-Event-ID), and the worker is free at once.
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
spindle_subscribe('urn:spindle-demo:wall');
