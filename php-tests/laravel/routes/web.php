<?php

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Route;

// bench/worker.sh's route.
Route::get('/', function () {
    return response('Hello, World!', 200, ['Content-Type' => 'text/plain']);
});

Route::get('/hello/{name}', function (string $name) {
    return view('hello', ['name' => $name, 'items' => ['a', '<b>']]);
});

// What the app sees of the request: query, cookies, a header.
Route::get('/json', function (Request $request) {
    $query = $request->query();
    ksort($query);
    return response()->json([
        'path' => $request->path(),
        'query' => $query,
        'theme' => $request->cookie('theme'),
        'header' => $request->header('X-Test'),
    ])->withCookie(cookie('seen', 'yes', 0, '/', null, false, true, false, 'lax'));
});

// A form POST without a CSRF token (VerifyCsrfToken::$except).
Route::post('/form', function (Request $request) {
    $form = $request->post();
    ksort($form);
    return response()->json(['form' => $form], 201);
});

// The session's CSRF token, then a POST that must carry it.
Route::get('/token', function () {
    return csrf_token();
});
Route::post('/guarded', function (Request $request) {
    return 'guarded ' . $request->input('note');
});

Route::get('/visit', function (Request $request) {
    $n = $request->session()->get('n', 0) + 1;
    $request->session()->put('n', $n);
    return response("visit $n\n", 200, ['Content-Type' => 'text/plain']);
});

Route::get('/boom', function () {
    throw new RuntimeException('boom from a route');
});

Route::get('/boot', function () {
    return response(getmypid() . ' ' . app('boot.id'), 200, ['Content-Type' => 'text/plain']);
});

// A fatal error, which no error handler sees (the time limit): Laravel
// answers it from the shutdown function it registered while booting.
Route::get('/fatal', function () {
    set_time_limit(1);
    while (true) {
    }
});
