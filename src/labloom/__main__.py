"""``python -m labloom`` is the ``labloom`` command."""

import sys

from .cli import main

sys.exit(main())
