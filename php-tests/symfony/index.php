<?php
// Classic front controller: boots the app for every request.
use Symfony\Component\HttpFoundation\Request;

$kernel = require __DIR__ . '/app.php';
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
