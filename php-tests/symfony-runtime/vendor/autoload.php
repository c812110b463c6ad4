<?php
// Stands in for Composer's vendor/autoload.php: Debian's autoloaders for
// the packages composer.json would require (php-symfony-framework-bundle,
// php-symfony-runtime 5.4) and the application's own PSR-4 map, App\ => src/.

require_once '/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php';
require_once '/usr/share/php/Symfony/Component/Runtime/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'App\\', 4) === 0) {
        $file = dirname(__DIR__) . '/src/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
