"""`python -m loravault.client` is the `loravault` command."""

import sys

from .cli import main

sys.exit(main())
