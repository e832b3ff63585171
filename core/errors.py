"""The one error tree every part raises, defined in loravault.proto.errors (the lowest part) and re-exported
here, so core's users import it from core. What each class means: see loravault.proto.errors.
core never imports grpc: the translation to status codes lives in loravault.proto.status.
"""

from __future__ import annotations

from loravault.proto.errors import *  # noqa: F403  (the whole tree, exactly as proto names it)
from loravault.proto.errors import __all__ as __all__
