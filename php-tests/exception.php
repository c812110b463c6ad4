<?php throw new RuntimeException('uncaught-exception-marker');
