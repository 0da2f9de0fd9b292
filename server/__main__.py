"""``python -m server``: the one entry point."""

import sys

from server.cli import main

sys.exit(main())
