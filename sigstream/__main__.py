"""``python -m sigstream``: the ``sigstream`` command line."""

import sys

from sigstream.cli.main import main

sys.exit(main())
