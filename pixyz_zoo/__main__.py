"""``python -m pixyz_zoo``: the command line (what ``torchrun ... -m pixyz_zoo train MODEL`` starts)."""

import sys

from pixyz_zoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
