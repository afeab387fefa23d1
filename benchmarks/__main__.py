"""``python -m benchmarks``: see ``benchmarks/README.md``."""

import sys

from .run import main

if __name__ == "__main__":  # spawned load processes import this module too
    sys.exit(main())
