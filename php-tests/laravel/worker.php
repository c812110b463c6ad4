<?php
// Worker script for this Laravel 8 application (spindle serve public
// --worker ../worker.php): boots the application once (environment,
// configuration, service providers, routes), then hands each request to the
// HTTP kernel. Between requests it forgets what Laravel keeps of a request
// in the long-lived container, as Laravel Octane's listeners do; an app
// with more request-scoped singletons (auth guards, a translator with a
// per-user locale, ...) must forget those too.

use Illuminate\Contracts\Http\Kernel;
use Illuminate\Http\Request;

require __DIR__ . '/vendor/autoload.php';

$app = require __DIR__ . '/bootstrap/app.php';
$kernel = $app->make(Kernel::class);
// What index.php does on every request, done once here.
$kernel->bootstrap();

$request = null;
$response = null;
$handle = static function () use ($kernel, &$request, &$response): void {
    // A fresh Request from this request's globals; the kernel makes it
    // the container's 'request' and clears the facade's copy.
    $request = Request::capture();
    $response = $kernel->handle($request);
    $response->send();
};

while (frankenphp_handle_request($handle)) {
    if ($request !== null && $response !== null) {
        // Terminable middleware and terminating callbacks, after the
        // response has left.
        $kernel->terminate($request, $response);
    }
    // The session manager keeps its store, and the store its attributes:
    // StartSession would merge them into the next client's session.
    if ($app->resolved('session')) {
        $app['session']->forgetDrivers();
        $app->forgetInstance('session.store');
    }
    // Cookies queued by this request and not sent (an exception).
    if ($app->resolved('cookie')) {
        $app['cookie']->flushQueuedCookies();
    }
    $request = $response = null;
    gc_collect_cycles();
}
