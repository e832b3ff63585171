"""The form of a SHA-256 digest wherever one crosses a boundary: 64 lowercase hex characters, nothing else.

Every part that receives a digest (a blob hash, a base fingerprint, a Merkle root, an audit chain hash, a
signed result hash) holds it to this one rule, so that no two checks can drift apart. The same form is that of
any 32 bytes in lowercase hex, such as an Ed25519 public key in securesystemslib's key form.

    >>> is_sha256_hex("ab" * 32), is_sha256_hex("AB" * 32), is_sha256_hex("ab" * 32 + "\\n")
    (True, False, False)
"""

from __future__ import annotations

import re

__all__ = ["is_sha256_hex"]

# fullmatch only: `$` would let a trailing newline through
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: object) -> bool:
    """Whether `value` is a str of exactly 64 lowercase hex characters."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None

