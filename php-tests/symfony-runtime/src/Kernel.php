<?php
// A FrameworkBundle micro-kernel, as Symfony's skeleton has, configured in
// PHP (no YAML) so that it needs only Debian's php-symfony-framework-bundle.

namespace App;

use App\Controller\AppController;
use Symfony\Bundle\FrameworkBundle\FrameworkBundle;
use Symfony\Bundle\FrameworkBundle\Kernel\MicroKernelTrait;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;
use Symfony\Component\HttpKernel\Kernel as BaseKernel;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

class Kernel extends BaseKernel
{
    use MicroKernelTrait;

    /** Tells one boot from another: the test sees whether the app booted once. */
    private $bootId;

    public function __construct(string $environment, bool $debug)
    {
        parent::__construct($environment, $debug);
        $this->bootId = bin2hex(random_bytes(8));
    }

    public function bootId(): string
    {
        return $this->bootId;
    }

    public function registerBundles(): iterable
    {
        return [new FrameworkBundle()];
    }

    public function getProjectDir(): string
    {
        return \dirname(__DIR__);
    }

    /** Outside the source tree: SYMFONY_VAR_DIR (the tests set it) or /tmp. */
    private function varDir(): string
    {
        return getenv('SYMFONY_VAR_DIR') ?: sys_get_temp_dir() . '/spindle-symfony-runtime-' . md5(__DIR__);
    }

    public function getCacheDir(): string
    {
        return $this->varDir() . '/cache/' . $this->environment;
    }

    public function getLogDir(): string
    {
        return $this->varDir() . '/log';
    }

    protected function configureContainer(ContainerConfigurator $container): void
    {
        $container->extension('framework', [
            'secret' => 'not-a-secret',
            'http_method_override' => false,
            'session' => [
                'storage_factory_id' => 'session.storage.factory.native',
                'handler_id' => null,
                'cookie_samesite' => 'lax',
            ],
            'router' => ['utf8' => true],
        ]);
        $services = $container->services()->defaults()->autowire()->autoconfigure();
        $services->set(AppController::class)->public()->tag('controller.service_arguments');
        $services->set(RequestCounter::class)->tag('kernel.reset', ['method' => 'reset']);
    }

    protected function configureRoutes(RoutingConfigurator $routes): void
    {
        // bench/worker.sh's route: GET /index.php has path info "/".
        $routes->add('home', '/')->controller([AppController::class, 'home']);
        $routes->add('hello', '/hello/{name}')->controller([AppController::class, 'hello']);
        $routes->add('echo', '/echo')->controller([AppController::class, 'echo']);
        $routes->add('form', '/form')->controller([AppController::class, 'form'])->methods(['POST']);
        $routes->add('boom', '/boom')->controller([AppController::class, 'boom']);
        $routes->add('fatal', '/fatal')->controller([AppController::class, 'fatal']);
        $routes->add('visit', '/visit')->controller([AppController::class, 'visit']);
        $routes->add('counter', '/counter')->controller([AppController::class, 'counter']);
        $routes->add('boot', '/boot')->controller([AppController::class, 'boot']);
    }
}
