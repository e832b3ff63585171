"""`python -m loravault.server ...` runs the server's command line (serve)."""

import sys

from .main import main

sys.exit(main())
