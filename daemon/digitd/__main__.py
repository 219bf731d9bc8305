"""`python -m digitd` behaves exactly like the `digitd` console script."""

from digitd.cli import entry

if __name__ == "__main__":
    entry()
