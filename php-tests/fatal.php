<?php
// Output, then a fatal error (a call to an undefined function).
echo "partial output\n";
spindle_this_function_does_not_exist();
echo "never reached\n";
