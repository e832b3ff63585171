"""The audit log's hash chain: each entry's hash covers the previous entry's hash and its own canonical body.

    entry_hash(i) = SHA-256( bytes.fromhex(previous_hash(i)) || body(i) )
    previous_hash(0) = GENESIS_HASH (64 zeros), previous_hash(i) = entry_hash(i - 1)

so the hash of the last entry commits to the whole log: changing, dropping or reordering any entry changes
every hash after it. Bodies are canonical JSON (sorted keys, no whitespace, ASCII), so one entry has one byte
string. `check_chain` returns the reason a chain fails (falsy), `verify_chain` raises DataLossError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from loravault.core.errors import DataLossError
from loravault.proto.digests import is_sha256_hex

__all__ = ["GENESIS_HASH", "AuditEntry", "ChainCheck", "check_chain", "entry_hash", "verify_chain"]

GENESIS_HASH = "0" * 64


def entry_hash(*, previous_hash: str, body: bytes) -> str:
    """The hash of an entry whose predecessor's hash is `previous_hash` (see the module docstring)."""
    if not is_sha256_hex(previous_hash):
        raise DataLossError(f"previous hash {previous_hash[:80]!r} is not 64 lowercase hex digits")
    return hashlib.sha256(bytes.fromhex(previous_hash) + body).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the log as stored and as streamed: position, chain hashes and canonical JSON body."""

    index: int  # 0, 1, 2, ...
    entry_hash: str
    previous_hash: str
    body: bytes  # canonical JSON: hashes and commitments only


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of `check_chain`: truthy when every link holds; `head_hash` is the last entry's hash."""

    size: int
    head_hash: str
    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


def check_chain(entries: Iterable[AuditEntry]) -> ChainCheck:
    """Whether `entries`, in order from index 0, form an unbroken chain from the genesis hash."""
    previous, size = GENESIS_HASH, 0
    for entry in entries:
        if entry.index != size:
            return ChainCheck(size, previous, f"audit log entry {size} is missing (found index {entry.index} next)")
        if entry.previous_hash != previous:
            return ChainCheck(size, previous, f"audit log entry {size} does not link to entry {size - 1}'s hash")
        if entry_hash(previous_hash=previous, body=entry.body) != entry.entry_hash:
            return ChainCheck(size, previous, f"audit log entry {size}: its body does not hash to its entry hash")
        previous, size = entry.entry_hash, size + 1
    return ChainCheck(size, previous)


def verify_chain(entries: Iterable[AuditEntry]) -> ChainCheck:
    """Like `check_chain`, but raises DataLossError naming the first broken entry."""
    result = check_chain(entries)
    if not result:
        raise DataLossError(result.reason)
    return result
