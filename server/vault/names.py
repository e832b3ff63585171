"""Validation of tenant and adapter names, the only free text that becomes part of a resource's identity."""

from __future__ import annotations

import re

from loravault.core import InvalidArgumentError

__all__ = ["MAX_NAME_LENGTH", "check_name"]

MAX_NAME_LENGTH = 64
# ASCII only, first character alphanumeric (no leading dot or dash), fullmatch so a trailing newline fails
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: object, *, what: str) -> str:
    """Return `name` if it is 1-64 characters of [A-Za-z0-9._-] starting alphanumeric, else raise.

    Raises InvalidArgumentError naming `what` (tenant, adapter) and the rule.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name)[:80]
        raise InvalidArgumentError(
            f"{what} name {shown} is invalid: use 1 to {MAX_NAME_LENGTH} characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name
