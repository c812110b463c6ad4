<?php
// Boots the kernel once, then hands each request to it until the server
// says stop (frankenphp_handle_request() returns false: shutdown, reload,
// --max-requests). terminate() runs after the response has left, so
// kernel.terminate listeners do not delay the client. Services tagged
// kernel.reset are reset by the kernel itself when it handles the next
// request (its services_resetter).

namespace App\Runtime;

use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\HttpKernel\KernelInterface;
use Symfony\Component\HttpKernel\TerminableInterface;
use Symfony\Component\Runtime\RunnerInterface;

final class WorkerRunner implements RunnerInterface
{
    private $kernel;

    public function __construct(HttpKernelInterface $kernel)
    {
        $this->kernel = $kernel;
    }

    public function run(): int
    {
        if ($this->kernel instanceof KernelInterface) {
            // The container is loaded at boot, not by the first request.
            $this->kernel->boot();
        }

        $request = null;
        $response = null;
        $handle = function () use (&$request, &$response): void {
            $request = Request::createFromGlobals();
            $response = $this->kernel->handle($request);
            $response->send();
        };

        while (\frankenphp_handle_request($handle)) {
            if ($request instanceof Request && $response instanceof Response
                && $this->kernel instanceof TerminableInterface
            ) {
                $this->kernel->terminate($request, $response);
            }
            // Nothing of this request may reach the next one.
            $request = $response = null;
            gc_collect_cycles();
        }

        return 0;
    }
}
