"""`python -m asynclocal demo` runs the demo; `python -m asynclocal bench` the core benchmark."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from asynclocal._demo import main

    sys.exit(main())
