<?php

namespace App\Http\Middleware;

use Illuminate\Foundation\Http\Middleware\VerifyCsrfToken as Middleware;

class VerifyCsrfToken extends Middleware
{
    /** /form takes a POST without a token; /guarded needs one. */
    protected $except = ['form'];
}
