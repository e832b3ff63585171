"""Reading an audit log for offline checks: from a data folder's database, or from a JSON-lines export.

Export format (one JSON object per line, UTF-8):

    {"format": "loravault-audit-export/v1", "server_key": {securesystemslib key dict}}
    {"type": "entry", "index": 0, "entry_hash": "...", "previous_hash": "...", "body": "<canonical JSON>",
     "receipt": "<DSSE envelope JSON>"}
    ...
    {"type": "checkpoint", "envelope": "<DSSE envelope JSON>"}

NOTE: the key inside an export is what the exporter claims; pass the server key you trust (`--server-key`)
to make the check mean something against a forger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravault.core.errors import DeserializationError, NotFoundError

from ..server_key import read_server_public_key
from ..vault.database import open_engine, read_transaction
from . import rows
from .chain import AuditEntry

__all__ = ["EXPORT_FORMAT", "LogSnapshot", "read_data_folder", "read_export", "write_export"]

EXPORT_FORMAT = "loravault-audit-export/v1"
_ALL = 1 << 62


@dataclass(frozen=True)
class LogSnapshot:
    """Everything an offline check needs: the server's public key, the entries, receipts and checkpoints."""

    server_key: dict[str, Any]
    entries: list[AuditEntry]
    receipts: dict[int, bytes]
    checkpoints: list[bytes]


def read_data_folder(data_dir: Path, *, database_url: str | None = None) -> LogSnapshot:
    """Read the log from a data folder (the server may be running: this only reads, in one snapshot)."""
    database = Path(data_dir) / "vault.db"
    if database_url is None and not database.is_file():
        raise NotFoundError(f"{database} does not exist: not a loravault data folder")
    engine = open_engine(database_url or f"sqlite:///{database.resolve()}")
    try:
        with read_transaction(engine) as conn:
            entries = rows.entries_from(conn, start=0, limit=_ALL)
            receipts = rows.receipts_by_index(conn)
            checkpoints = [c.envelope for c in rows.list_checkpoints(conn)]
    finally:
        engine.dispose()
    return LogSnapshot(read_server_public_key(data_dir), entries, receipts, checkpoints)


def write_export(snapshot: LogSnapshot, path: Path) -> int:
    """Write `snapshot` as JSON lines to `path`; returns the number of entries written."""
    lines: list[dict[str, object]] = [{"format": EXPORT_FORMAT, "server_key": snapshot.server_key}]
    for entry in snapshot.entries:
        receipt = snapshot.receipts.get(entry.index, b"").decode("ascii")
        lines.append({"type": "entry", "index": entry.index, "entry_hash": entry.entry_hash,
                      "previous_hash": entry.previous_hash, "body": entry.body.decode("ascii"), "receipt": receipt})
    lines += [{"type": "checkpoint", "envelope": c.decode("ascii")} for c in snapshot.checkpoints]
    Path(path).write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    return len(snapshot.entries)


def read_export(path: Path) -> LogSnapshot:
    """Parse an export file; DeserializationError for anything that is not the format above."""
    try:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        if not lines or lines[0].get("format") != EXPORT_FORMAT:
            raise ValueError(f"the first line must name the format {EXPORT_FORMAT}")
        entries, receipts, checkpoints = [], {}, []
        for line in lines[1:]:
            if line["type"] == "entry":
                entries.append(AuditEntry(index=int(line["index"]), entry_hash=str(line["entry_hash"]),
                                          previous_hash=str(line["previous_hash"]), body=line["body"].encode("ascii")))
                if line["receipt"]:
                    receipts[int(line["index"])] = line["receipt"].encode("ascii")
            elif line["type"] == "checkpoint":
                checkpoints.append(line["envelope"].encode("ascii"))
            else:
                raise ValueError(f"unknown line type {str(line['type'])[:40]!r}")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeError) as exc:
        raise DeserializationError(f"{path} is not a loravault audit export: {exc}") from exc
    return LogSnapshot(dict(lines[0]["server_key"]), entries, receipts, checkpoints)
