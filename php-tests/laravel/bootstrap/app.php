<?php
// Laravel 8's bootstrap/app.php, plus where the app may write: storage/ and
// the bootstrap cache live outside the source tree, in LARAVEL_VAR_DIR (the
// tests set it) or a directory under /tmp.

$app = new Illuminate\Foundation\Application(
    $_ENV['APP_BASE_PATH'] ?? dirname(__DIR__)
);

$var = getenv('LARAVEL_VAR_DIR') ?: sys_get_temp_dir() . '/spindle-laravel-' . md5(__DIR__);
foreach (['storage/framework/views', 'storage/framework/sessions', 'storage/framework/cache', 'storage/logs', 'cache'] as $dir) {
    is_dir("$var/$dir") || @mkdir("$var/$dir", 0777, true);
}
$app->useStoragePath("$var/storage");
// Read by Application::getCachedPackagesPath() and friends (Env::get sees $_ENV).
$_ENV['APP_PACKAGES_CACHE'] = "$var/cache/packages.php";
$_ENV['APP_SERVICES_CACHE'] = "$var/cache/services.php";

$app->singleton(
    Illuminate\Contracts\Http\Kernel::class,
    App\Http\Kernel::class
);

$app->singleton(
    Illuminate\Contracts\Console\Kernel::class,
    App\Console\Kernel::class
);

$app->singleton(
    Illuminate\Contracts\Debug\ExceptionHandler::class,
    App\Exceptions\Handler::class
);

// Tells one boot from another: the tests see whether the app booted once.
$app->instance('boot.id', bin2hex(random_bytes(8)));

return $app;
