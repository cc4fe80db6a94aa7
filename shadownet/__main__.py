"""``python -m shadownet``: the same as the ``shadownet`` command."""

import sys

from shadownet.cli import main

sys.exit(main())
