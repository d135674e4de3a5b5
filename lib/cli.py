"""``python -m lib.cli``, the path the docs give: the Operations API from the
command line (the tool is ``lib/tools/cli.py``)."""

import sys

from lib.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
