<?php echo "fixtures index";
