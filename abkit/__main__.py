import sys

from abkit.cli.main import main

sys.exit(main())
