<?php
// Stands in for Composer's vendor/autoload.php: Debian's php-laravel-framework
// autoloader (it loads its dependencies' own, and Illuminate's helpers.php
// files, through include_path /usr/share/php) and the application's PSR-4
// map, App\ => app/, as composer.json's "autoload" would.

require_once '/usr/share/php/Illuminate/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'App\\', 4) === 0) {
        $file = dirname(__DIR__) . '/app/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
