"""Offline verification of an audit log: the chain, every receipt and every checkpoint, against the server key.

`check_log` returns an `AuditReport` that is falsy with its problems listed; `verify_log` raises DataLossError
with the first one. The inputs are plain data (from a data folder or an export file, see export.py), so the
check needs no running server and trusts nothing but the server's public key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loravault.core.errors import DataLossError, LoravaultError
from loravault.proto.envelope import verify_envelope
from loravault.proto.errors import EnvelopeError
from loravault.proto.receipt import Receipt

from .body import KEY_CHANGE_KIND, ROUND_ENTRY_KIND, entry_kind, parse_body, parse_key_change, parse_round_body
from .chain import GENESIS_HASH, AuditEntry, check_chain
from .checkpoints import verify_checkpoint

__all__ = ["AuditReport", "check_log", "verify_log"]


@dataclass(frozen=True)
class AuditReport:
    """What was verified; truthy when nothing failed."""

    entries: int
    head_hash: str
    receipts: int  # receipts whose signature and fields were checked (key-change entries have none)
    checkpoints: int  # signed checkpoints checked against the chain
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.problems


def check_log(
    entries: Sequence[AuditEntry],
    *,
    receipts: Mapping[int, bytes],
    checkpoints: Sequence[bytes],
    server_key: Mapping[str, Any],
) -> AuditReport:
    """Check the chain, that each entry has a receipt signed by `server_key` that names it, and each checkpoint."""
    problems: list[str] = []
    chain = check_chain(entries)
    if not chain:
        problems.append(chain.reason)
    hashes = [e.entry_hash for e in entries[: chain.size]]
    for entry in entries[: chain.size]:
        reason = _receipt_problem(entry, receipts.get(entry.index), server_key)
        if reason:
            problems.append(reason)
    for number, envelope in enumerate(checkpoints):
        reason = _checkpoint_problem(envelope, hashes, server_key)
        if reason:
            problems.append(f"checkpoint {number}: {reason}")
    return AuditReport(entries=chain.size, head_hash=chain.head_hash, receipts=len(receipts),
                       checkpoints=len(checkpoints), problems=tuple(problems))


def verify_log(
    entries: Sequence[AuditEntry],
    *,
    receipts: Mapping[int, bytes],
    checkpoints: Sequence[bytes],
    server_key: Mapping[str, Any],
) -> AuditReport:
    """Like `check_log`, but raises DataLossError naming the first problem."""
    report = check_log(entries, receipts=receipts, checkpoints=checkpoints, server_key=server_key)
    if not report:
        raise DataLossError(f"audit log does not verify: {report.problems[0]}")
    return report


def _receipt_problem(entry: AuditEntry, envelope: bytes | None, server_key: Mapping[str, Any]) -> str:
    """Why the entry's receipt does not verify ("" when it does); a key-change entry must have none."""
    try:
        kind = entry_kind(entry.body)
        if kind == KEY_CHANGE_KIND:
            parse_key_change(entry.body)
    except LoravaultError as exc:
        return f"audit log entry {entry.index}: {exc}"
    if kind == KEY_CHANGE_KIND:
        return "" if envelope is None else f"audit log entry {entry.index}: a key change carries a receipt"
    if envelope is None:
        return f"audit log entry {entry.index} has no receipt"
    try:
        record = parse_round_body(entry.body) if kind == ROUND_ENTRY_KIND else parse_body(entry.body)
        statement = verify_envelope(envelope, keys=[server_key], threshold=1, label=f"receipt {entry.index}")
        receipt = Receipt.from_statement(statement)
    except (EnvelopeError, LoravaultError) as exc:
        return f"audit log entry {entry.index}: {exc}"
    expected = (record.tenant, record.adapter, record.request_id, entry.index, entry.entry_hash,
                record.new_version, record.new_hash)
    found = (receipt.tenant, receipt.adapter, receipt.request_id, receipt.log_index, receipt.entry_hash,
             receipt.new_version, receipt.new_adapter_hash)
    if found != expected:
        return f"audit log entry {entry.index}: its receipt names another entry or version"
    return ""


def _checkpoint_problem(envelope: bytes, hashes: Sequence[str], server_key: Mapping[str, Any]) -> str:
    try:
        checkpoint = verify_checkpoint(envelope, server_key=server_key)
    except EnvelopeError as exc:
        return str(exc)
    if checkpoint.size > len(hashes):
        return f"signed at size {checkpoint.size}, but only {len(hashes)} entries verify"
    expected = GENESIS_HASH if checkpoint.size == 0 else hashes[checkpoint.size - 1]
    if checkpoint.head_hash != expected:
        return f"signed head hash at size {checkpoint.size} differs from the log's: the log was rewritten"
    return ""
