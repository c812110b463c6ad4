<?php
// A Symfony Runtime for Spindle's (and FrankenPHP's) worker mode. It does
// what the runtime/frankenphp-symfony package's runtime does (that package is
// not in Debian; this is written from the Runtime component's interfaces):
// in a worker script ($_SERVER['FRANKENPHP_WORKER'] is set while it boots)
// an HTTP kernel gets WorkerRunner, which serves requests in a loop; anywhere
// else everything is SymfonyRuntime's, so one public/index.php serves both
// classic and worker mode.

namespace App\Runtime;

use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\Runtime\RunnerInterface;
use Symfony\Component\Runtime\SymfonyRuntime;

class WorkerRuntime extends SymfonyRuntime
{
    public function getRunner(?object $application): RunnerInterface
    {
        if ($application instanceof HttpKernelInterface
            && !empty($_SERVER['FRANKENPHP_WORKER'])
            && function_exists('frankenphp_handle_request')
        ) {
            return new WorkerRunner($application);
        }

        return parent::getRunner($application);
    }
}
