<?php
// What Composer's symfony/runtime plugin generates into
// vendor/autoload_runtime.php (Debian ships its template as
// Symfony/Component/Runtime/Internal/autoload_runtime.template), written out
// by hand for a composer.json with
//   "extra": {"runtime": {"class": "App\\Runtime\\WorkerRuntime", "env": "prod"}}
// APP_RUNTIME in $_SERVER or $_ENV would choose another runtime class.

if (true === (require_once __DIR__ . '/autoload.php') || empty($_SERVER['SCRIPT_FILENAME'])) {
    return;
}

$app = require $_SERVER['SCRIPT_FILENAME'];

if (!is_object($app)) {
    throw new TypeError(sprintf('Invalid return value: callable object expected, "%s" returned from "%s".', get_debug_type($app), $_SERVER['SCRIPT_FILENAME']));
}

$runtime = $_SERVER['APP_RUNTIME'] ?? $_ENV['APP_RUNTIME'] ?? 'App\\Runtime\\WorkerRuntime';
$runtime = new $runtime(($_SERVER['APP_RUNTIME_OPTIONS'] ?? $_ENV['APP_RUNTIME_OPTIONS'] ?? []) + [
    'env' => 'prod',
    'project_dir' => dirname(__DIR__, 1),
]);

[$app, $args] = $runtime
    ->getResolver($app)
    ->resolve();

$app = $app(...$args);

exit(
    $runtime
        ->getRunner($app)
        ->run()
);
