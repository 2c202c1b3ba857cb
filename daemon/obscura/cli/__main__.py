"""``python -m obscura.cli``."""

import sys

from obscura.cli import main

sys.exit(main())
