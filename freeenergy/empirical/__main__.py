"""``python -m freeenergy.empirical report BASE TRAINED --budget N --out DIR`` (see ``--help``)."""

import sys

from .report import main

if __name__ == "__main__":
    sys.exit(main())
