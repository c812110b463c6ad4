<?php
// FrankenPHP's function, with its positional argument order:
// topics, data, private, id, type, retry.
echo mercure_publish(['https://example.com/books/1', 'https://example.com/alt'], 'from mercure', false, 'm-1', 'book', 250);
