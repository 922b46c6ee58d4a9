"""``python -m streambin ...``: see streambin.cli."""

import sys

from streambin.cli import main

sys.exit(main())
