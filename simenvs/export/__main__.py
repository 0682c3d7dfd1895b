import sys

from simenvs.export.cli import main

sys.exit(main())
