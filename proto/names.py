"""The name rule for tenants and adapters, the only free text that becomes part of a resource's identity.

One rule for the vault (which refuses a bad name in a request) and the manifests (which refuse one in a signed
payload): 1 to 64 ASCII characters of A-Z a-z 0-9 . _ -, the first a letter or digit (no leading dot or dash).

    >>> is_valid_name("acme-support_v2.1"), is_valid_name(".hidden"), is_valid_name("a" * 65)
    (True, False, False)
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

__all__ = ["MAX_NAME_LENGTH", "check_name", "is_valid_name"]

MAX_NAME_LENGTH = 64
# ASCII only, first character alphanumeric (no leading dot or dash), fullmatch so a trailing newline fails
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_valid_name(name: object) -> bool:
    """Whether `name` is a str that follows the name rule (see the module docstring)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object, *, what: str) -> str:
    """Return `name` if it is 1-64 characters of [A-Za-z0-9._-] starting alphanumeric, else raise.

    Raises InvalidArgumentError naming `what` (tenant, adapter) and the rule.
    """
    if not is_valid_name(name):
        shown = repr(name)[:80]
        raise InvalidArgumentError(
            f"{what} name {shown} is invalid: use 1 to {MAX_NAME_LENGTH} characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name  # type: ignore[return-value]
