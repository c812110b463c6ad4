<?php
// Publishes one update with Symfony's Mercure component, as installed by
// Debian's php-symfony-mercure: a real client that nobody here wrote.
//   php symfony_publish.php HUB_URL JWT TOPIC DATA [private]
// Prints the id the hub answered; exits 1 with the client's error.
require '/usr/share/php/Symfony/Component/Mercure/autoload.php';
require '/usr/share/php/Symfony/Component/HttpClient/autoload.php';

use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Jwt\StaticTokenProvider;
use Symfony\Component\Mercure\Update;

[, $url, $jwt, $topic, $data] = $argv;
$private = ($argv[5] ?? '') === 'private';
$hub = new Hub($url, new StaticTokenProvider($jwt));
try {
    echo $hub->publish(new Update($topic, $data, $private, null, 'symfony')), "\n";
} catch (Throwable $e) {
    for (; $e; $e = $e->getPrevious()) {
        fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    }
    exit(1);
}
