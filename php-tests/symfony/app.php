<?php
// A small Symfony HttpKernel application built from Debian's packages
// (php-symfony-http-kernel, -routing, -event-dispatcher, -http-foundation
// 5.4), no Composer: the same app serves tests/worker_mode.rs in classic
// mode (index.php) and in worker mode (worker.php). Returns the kernel.
require_once '/usr/share/php/Symfony/Component/HttpKernel/autoload.php';
require_once '/usr/share/php/Symfony/Component/Routing/autoload.php';

use Symfony\Component\EventDispatcher\EventDispatcher;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\RequestStack;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\Session\Session;
use Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage;
use Symfony\Component\HttpKernel\Controller\ArgumentResolver;
use Symfony\Component\HttpKernel\Controller\ControllerResolver;
use Symfony\Component\HttpKernel\Event\ExceptionEvent;
use Symfony\Component\HttpKernel\EventListener\RouterListener;
use Symfony\Component\HttpKernel\HttpKernel;
use Symfony\Component\HttpKernel\KernelEvents;
use Symfony\Component\Routing\Matcher\UrlMatcher;
use Symfony\Component\Routing\RequestContext;
use Symfony\Component\Routing\Route;
use Symfony\Component\Routing\RouteCollection;

$routes = new RouteCollection();
// The benchmark's route (bench/worker.sh): /index.php has path info "/".
$routes->add('home', new Route('/', ['_controller' => function () {
    return new Response('Hello, World!', 200, ['Content-Type' => 'text/plain']);
}]));
$routes->add('hello', new Route('/hello/{name}', ['_controller' => function (string $name) {
    return new Response('Hello ' . $name . "\n", 200, ['Content-Type' => 'text/plain']);
}]));
$routes->add('echo', new Route('/echo', ['_controller' => function (Request $request) {
    $query = $request->query->all();
    $form = $request->request->all();
    $cookies = $request->cookies->all();
    ksort($query);
    ksort($form);
    ksort($cookies);
    return new JsonResponse([
        'method' => $request->getMethod(),
        'path' => $request->getPathInfo(),
        'query' => $query,
        'form' => $form,
        'cookies' => $cookies,
        'header' => $request->headers->get('X-Test'),
        'body' => $request->getContent(),
        'files' => array_map(fn ($f) => $f->getClientOriginalName(), $request->files->all()),
    ]);
}]));
$routes->add('status', new Route('/status/{code}', ['_controller' => function (int $code) {
    return new Response("status $code\n", $code, ['X-Custom' => "c$code"]);
}], ['code' => '\d+']));
$routes->add('visit', new Route('/visit', ['_controller' => function (Request $request) {
    $session = new Session(new NativeSessionStorage(['cookie_path' => '/']));
    $request->setSession($session);
    $session->start();
    $n = $session->get('n', 0) + 1;
    $session->set('n', $n);
    $response = new Response("visit $n\n", 200, ['Content-Type' => 'text/plain']);
    $session->save();
    return $response;
}]));
$routes->add('boom', new Route('/boom', ['_controller' => function () {
    throw new RuntimeException('boom');
}]));

$requestStack = new RequestStack();
$dispatcher = new EventDispatcher();
$dispatcher->addSubscriber(new RouterListener(new UrlMatcher($routes, new RequestContext()), $requestStack));
$dispatcher->addListener(KernelEvents::EXCEPTION, function (ExceptionEvent $event) {
    $e = $event->getThrowable();
    $code = $e instanceof Symfony\Component\HttpKernel\Exception\HttpExceptionInterface ? $e->getStatusCode() : 500;
    $event->setResponse(new Response('error: ' . get_class($e) . "\n", $code, ['Content-Type' => 'text/plain']));
});

return new HttpKernel($dispatcher, new ControllerResolver(), $requestStack, new ArgumentResolver());
