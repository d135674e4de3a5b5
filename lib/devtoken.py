"""``python -m lib.devtoken``, the path the docs give: mints a bearer token
the local stack accepts (the tool is ``lib/tools/devtoken.py``)."""

import sys

from lib.tools.devtoken import main

if __name__ == "__main__":
    sys.exit(main())
