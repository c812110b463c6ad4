<?php error_log('error-log-marker-' . ($_GET['tag'] ?? '')); echo "logged";
