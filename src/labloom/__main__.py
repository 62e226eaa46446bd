"""``python -m labloom`` is the ``labloom`` command."""

import sys

from ._cli import main

sys.exit(main())
