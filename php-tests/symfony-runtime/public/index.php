<?php
// The front controller of a Symfony Flex application, unchanged: the Runtime
// component (vendor/autoload_runtime.php) runs what it returns. Classic mode
// runs it per request; worker mode runs it once (--worker index.php) and the
// runtime's runner (src/Runtime/) loops on frankenphp_handle_request().

use App\Kernel;

require_once dirname(__DIR__) . '/vendor/autoload_runtime.php';

return function (array $context) {
    return new Kernel($context['APP_ENV'], (bool) $context['APP_DEBUG']);
};
