import sys

from simenvs.cli import main

sys.exit(main())
