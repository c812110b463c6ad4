<!DOCTYPE html>
<title>Hello</title>
<h1>Hello, {{ $name }}!</h1>
@foreach ($items as $item)
<li>{{ $item }}</li>
@endforeach
