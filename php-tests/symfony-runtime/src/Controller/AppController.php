<?php

namespace App\Controller;

use App\Kernel;
use App\RequestCounter;
use Symfony\Component\HttpFoundation\Cookie;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\KernelInterface;

final class AppController
{
    public function home(): Response
    {
        return new Response('Hello, World!', 200, ['Content-Type' => 'text/plain']);
    }

    public function hello(string $name): Response
    {
        $response = new Response("Hello $name\n", 200, ['Content-Type' => 'text/plain', 'X-Custom' => 'hello']);
        $response->headers->setCookie(Cookie::create('greeted', $name, 0, '/', null, false, true, false, 'lax'));

        return $response;
    }

    /** What the app sees of the request: query, cookies, a header. */
    public function echo(Request $request): JsonResponse
    {
        $query = $request->query->all();
        $cookies = $request->cookies->all();
        ksort($query);
        ksort($cookies);

        return new JsonResponse([
            'method' => $request->getMethod(),
            'path' => $request->getPathInfo(),
            'query' => $query,
            'form' => $request->request->all(),
            'cookies' => $cookies,
            'header' => $request->headers->get('X-Test'),
        ]);
    }

    public function form(Request $request): JsonResponse
    {
        $form = $request->request->all();
        ksort($form);

        return new JsonResponse(['form' => $form, 'type' => $request->getContentType()], 201);
    }

    public function boom(): Response
    {
        throw new \RuntimeException('boom from the controller');
    }

    /** A fatal error, which no error handler sees (the time limit):
     * Symfony's ErrorHandler answers it from the shutdown function it
     * registered while booting. */
    public function fatal(): Response
    {
        set_time_limit(1);
        while (true) {
        }
    }

    public function visit(Request $request): Response
    {
        $session = $request->getSession();
        $n = $session->get('n', 0) + 1;
        $session->set('n', $n);

        return new Response("visit $n\n", 200, ['Content-Type' => 'text/plain']);
    }

    public function counter(RequestCounter $counter): Response
    {
        $hits = $counter->hit();

        return new Response(sprintf("hits %d resets %d\n", $hits, RequestCounter::$resets), 200, ['Content-Type' => 'text/plain']);
    }

    public function boot(KernelInterface $kernel): Response
    {
        \assert($kernel instanceof Kernel);

        return new Response(getmypid() . ' ' . $kernel->bootId(), 200, ['Content-Type' => 'text/plain']);
    }
}
