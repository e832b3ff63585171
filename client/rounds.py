"""Federation rounds as the SDK shows them: each federation-round version with its signed provenance.

`VaultClient.rounds()` returns `RoundInfo`s, whose manifest is parsed from the signed envelope the vault
stored (the vault verified its signatures at commit time; `verify_round_manifest` re-checks them against
keys the caller trusts). `versions_with_provenance` is what `loravault adapters versions` prints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loravault.proto import loravault_pb2 as pb
from loravault.proto.envelope import parse_envelope
from loravault.proto.federation import RoundManifest
from loravault.proto.statement import Statement

if TYPE_CHECKING:
    from .sdk import VaultClient

__all__ = ["RoundInfo", "provenance_summary", "versions_with_provenance"]


@dataclass(frozen=True)
class RoundInfo:
    """One committed round: its version, the manifest's hash and the manifest itself, with the signed bytes."""

    version: int
    manifest_hash: str
    manifest: RoundManifest
    envelope: bytes

    @classmethod
    def from_pb(cls, m: pb.RoundProvenance) -> RoundInfo:
        """Raises MalformedEnvelopeError or ManifestError when the stored envelope does not parse."""
        statement = Statement.from_bytes(parse_envelope(bytes(m.envelope)).payload)
        return cls(m.version, m.manifest_hash, RoundManifest.from_statement(statement), bytes(m.envelope))


def provenance_summary(manifest: RoundManifest) -> dict[str, Any]:
    """The provenance fields a person reads: round, parent, method and error, participants, failures."""
    return {
        "round": manifest.round,
        "parent_version": manifest.parent_version,
        "parent_hash": manifest.parent_hash,
        "aggregate_hash": manifest.aggregate_hash,
        "aggregation": manifest.aggregation,
        "effective_weight_error": manifest.effective_weight_error,
        "truncation_error": manifest.truncation_error,
        "participants": [dataclasses.asdict(p) for p in manifest.participants],
        "failures": [dataclasses.asdict(f) for f in manifest.failures],
        "signed_by": list(manifest.key_ids),
    }


def versions_with_provenance(client: VaultClient, name: str, *, tenant: str = "") -> list[dict[str, Any]]:
    """Every version as a dict; federation-round versions carry their provenance under "provenance"."""
    versions = client.versions(name, tenant=tenant)
    rounds = {}
    if any(v.kind == "federation-round" for v in versions):
        rounds = {r.version: r for r in client.rounds(name, tenant=tenant)}
    rows = []
    for version in versions:
        row = dataclasses.asdict(version)
        if version.number in rounds:
            row["provenance"] = provenance_summary(rounds[version.number].manifest)
        rows.append(row)
    return rows
