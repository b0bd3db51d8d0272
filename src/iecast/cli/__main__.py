import sys

from iecast.cli import main

sys.exit(main())
