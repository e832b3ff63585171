"""A client's own record of what it trained on in each round: sample ids, the round, and what it sent.

Kept on the client's machine only (one JSON line per round in `<dir>/<client>.jsonl`, appended and fsynced),
so that the client can later show which rounds its data reached (the vault's round manifests name the
client and the hash of its update) and compute an erasure of those samples. The sample ids never leave the
client: the vault and the coordinator see only the update hash and the sample count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loravault.core.errors import DataLossError, InvalidArgumentError

__all__ = ["LedgerEntry", "Ledger"]


@dataclass(frozen=True)
class LedgerEntry:
    run_id: int  # Flower's run id
    round: int  # the server round
    node_id: int  # this client's Flower node id in that run
    sample_ids: tuple[str, ...]  # what it trained on, in its own ids
    update_sha256: str  # the update it sent, as named in the round manifest
    num_samples: int


class Ledger:
    """The JSON-lines file of one client."""

    def __init__(self, folder: Path, *, client: str) -> None:
        if not client or "/" in client or client.startswith("."):
            raise InvalidArgumentError(f"client name {client!r} cannot name a ledger file")
        self.path = Path(folder) / f"{client}.jsonl"

    def record(self, entry: LedgerEntry) -> None:
        """Append one round durably (write, flush, fsync) before the update is sent."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**asdict(entry), "sample_ids": list(entry.sample_ids)}, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self) -> list[LedgerEntry]:
        """Every recorded round, oldest first; DataLossError when a line does not parse."""
        if not self.path.exists():
            return []
        found = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                data = json.loads(line)
                found.append(LedgerEntry(**{**data, "sample_ids": tuple(data["sample_ids"])}))
            except (ValueError, TypeError, KeyError) as exc:
                raise DataLossError(f"{self.path}:{number}: not a ledger entry ({exc})") from exc
        return found

    def rounds_of(self, sample_ids: Sequence[str]) -> list[int]:
        """The rounds in which any of `sample_ids` was trained on (what an erasure must reach)."""
        wanted = set(sample_ids)
        return sorted({e.round for e in self.entries() if wanted & set(e.sample_ids)})
