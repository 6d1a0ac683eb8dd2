"""``python -m mrta``: the command line (see :mod:`mrta.cli`)."""

import sys

from mrta.cli import main

sys.exit(main())
