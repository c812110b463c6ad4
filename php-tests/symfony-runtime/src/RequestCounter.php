<?php
// Per-request state in a shared service: tagged kernel.reset, so in worker
// mode the kernel resets it before the next request. $resets counts the
// resets (static, so it survives them) for the test to see.

namespace App;

use Symfony\Contracts\Service\ResetInterface;

final class RequestCounter implements ResetInterface
{
    public static $resets = 0;
    private $hits = 0;

    public function hit(): int
    {
        return ++$this->hits;
    }

    public function reset(): void
    {
        $this->hits = 0;
        self::$resets++;
    }
}
