"""`python -m digitd` behaves exactly like the `digitd` console script."""

import sys

from digitd.cli import main

if __name__ == "__main__":
    sys.exit(main())
