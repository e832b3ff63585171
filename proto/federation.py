"""The federation-round manifest: what a federation's coordinator signs to commit one round's aggregate.

The manifest is the predicate of an in-toto Statement (predicateType `urn:loravault:federation-round:v1`) whose
one subject is the shared adapter version the round creates, `tenant/adapter@v<new_version>`, with the sha256
of the aggregate's canonical float32 safetensors bytes (`aggregate_hash`, which is also the new blob's hash).
It records the round's provenance: round number, parent version and hash, the participants (Flower node id,
the client's own identity, the sha256 of its update and its sample count), the nodes that failed, the
aggregation method and its measured error in effective weights. Clients' updates are never sent to the vault,
only their hashes: each update carries every earlier round's influence.

Signing, the request id (idempotency key) and the validity window work exactly as for erasure manifests
(loravault.proto.manifest), whose field rules are reused here.

Example (coordinator side, then server side):

    data = sign_round_manifest(manifest, signers=[signer])
    signed = verify_round_manifest(data, keys=registered_keys, threshold=1, tenant="fed", adapter="shared")
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from securesystemslib.signer import Signer

from .envelope import KeyLike, parse_envelope, sign_statement, verify_envelope, verify_signatures
from .errors import ManifestError, SignatureError
from .manifest import (
    MAX_KEY_IDS,
    ValidityWindow,
    _from_json,
    _require_hex64,
    _require_int,
    _require_name,
    _require_request_id,
    _require_same_statement,
    _to_json,
    subject_name,
)
from .receipt import Receipt
from .statement import Statement, Subject

__all__ = [
    "FEDERATION_ROUND_PREDICATE_TYPE",
    "ROUND_METHODS",
    "MAX_PARTICIPANTS",
    "Failure",
    "Participant",
    "RoundManifest",
    "SignedRound",
    "sign_round_manifest",
    "verify_round_manifest",
    "verify_round_receipt",
]

FEDERATION_ROUND_PREDICATE_TYPE = "urn:loravault:federation-round:v1"
ROUND_METHODS = ("ffa", "stack", "fedavg")  # core.aggregation.AGGREGATION_METHODS (proto never imports core)
MAX_PARTICIPANTS = 256  # keeps a manifest far below the envelope size cap (~200 bytes per participant)
_NODE_ID = re.compile(r"[0-9]{1,20}")  # Flower node ids are uint64, written in decimal
_FAILURE = re.compile(r"[ -~]{0,200}")  # printable ASCII: the reason a node dropped out


def _require_error(value: Any, *, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ManifestError(f"{field_name} must be a finite number >= 0, got {str(value)[:40]}")
    return float(value)


@dataclass(frozen=True)
class Participant:
    """One client whose update went into the aggregate."""

    node_id: str  # the Flower node id, decimal
    client: str  # the client's own identity (its name in the federation), vault name rules
    update_hash: str  # SHA-256 of the client's update as canonical float32 safetensors bytes
    num_samples: int  # its aggregation weight, >= 1

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not _NODE_ID.fullmatch(self.node_id):
            raise ManifestError(f"participant node_id {str(self.node_id)[:30]!r} must be 1-20 decimal digits")
        _require_name(self.client, field_name="participant client")
        _require_hex64(self.update_hash, field_name="participant update_hash")
        _require_int(self.num_samples, field_name="participant num_samples", minimum=1)


@dataclass(frozen=True)
class Failure:
    """A node that was asked to train in this round and did not answer in time (or answered an error)."""

    node_id: str
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not _NODE_ID.fullmatch(self.node_id):
            raise ManifestError(f"failure node_id {str(self.node_id)[:30]!r} must be 1-20 decimal digits")
        if not isinstance(self.reason, str) or not _FAILURE.fullmatch(self.reason):
            raise ManifestError("failure reason must be at most 200 printable ASCII characters")


@dataclass(frozen=True)
class RoundManifest:
    """One federation round, bound to the shared adapter's head it builds on and the version it produces."""

    # who commits
    tenant: str  # the federation
    adapter: str  # its shared adapter
    key_ids: tuple[str, ...]  # the coordinator's keys meant to sign, sorted, distinct
    request_id: str  # 32 lowercase hex; the server's idempotency key
    # the vault state it applies to
    base_fingerprint: str
    parent_version: int  # the shared adapter's head the round started from, >= 1
    parent_hash: str
    # what it produces
    round: int  # 1, 2, ... within this federation run
    new_version: int  # parent_version + 1
    aggregate_hash: str  # SHA-256 of the aggregate's canonical float32 bytes (= the new blob's hash)
    # how
    aggregation: str  # one of ROUND_METHODS
    effective_weight_error: float  # ||s B A - weighted mean of s B_k A_k||_F (0 for ffa up to rounding)
    truncation_error: float  # stack's SVD truncation error, else 0.0
    participants: tuple[Participant, ...]
    failures: tuple[Failure, ...]
    window: ValidityWindow

    def __post_init__(self) -> None:
        _require_name(self.tenant, field_name="tenant")
        _require_name(self.adapter, field_name="adapter")
        self._check_key_ids()
        _require_request_id(self.request_id)
        for name in ("base_fingerprint", "parent_hash", "aggregate_hash"):
            _require_hex64(getattr(self, name), field_name=name)
        _require_int(self.parent_version, field_name="parent_version", minimum=1)
        _require_int(self.round, field_name="round", minimum=1)
        if self.new_version != self.parent_version + 1:
            raise ManifestError(f"new_version {self.new_version} must be parent_version {self.parent_version} + 1")
        if self.aggregation not in ROUND_METHODS:
            raise ManifestError(f"aggregation {str(self.aggregation)[:40]!r} is not one of {', '.join(ROUND_METHODS)}")
        for name in ("effective_weight_error", "truncation_error"):
            object.__setattr__(self, name, _require_error(getattr(self, name), field_name=name))
        self._check_nodes()
        if not isinstance(self.window, ValidityWindow):
            raise ManifestError("window must be a ValidityWindow")

    def _check_key_ids(self) -> None:
        if not isinstance(self.key_ids, (list, tuple)) or not 0 < len(self.key_ids) <= MAX_KEY_IDS:
            raise ManifestError(f"key_ids must list 1 to {MAX_KEY_IDS} key ids")
        for key_id in self.key_ids:
            _require_hex64(key_id, field_name="each key id")
        if len(set(self.key_ids)) != len(self.key_ids):
            raise ManifestError("key_ids repeat a key id")
        object.__setattr__(self, "key_ids", tuple(sorted(self.key_ids)))

    def _check_nodes(self) -> None:
        participants, failures = tuple(self.participants), tuple(self.failures)
        if not 0 < len(participants) <= MAX_PARTICIPANTS or len(failures) > MAX_PARTICIPANTS:
            raise ManifestError(f"a round lists 1 to {MAX_PARTICIPANTS} participants and at most as many failures")
        if not all(isinstance(p, Participant) for p in participants) or not all(
                isinstance(f, Failure) for f in failures):
            raise ManifestError("participants and failures must be Participant and Failure objects")
        nodes = [p.node_id for p in participants] + [f.node_id for f in failures]
        if len(set(nodes)) != len(nodes):
            raise ManifestError("a node id appears twice among the participants and failures")
        object.__setattr__(self, "participants", tuple(sorted(participants, key=lambda p: int(p.node_id))))
        object.__setattr__(self, "failures", tuple(sorted(failures, key=lambda f: int(f.node_id))))

    @property
    def label(self) -> str:
        """How messages name this round: `adapter fed/shared v3 (round 2)`."""
        return f"adapter {self.tenant}/{self.adapter} v{self.new_version} (round {self.round})"

    @property
    def total_samples(self) -> int:
        return sum(p.num_samples for p in self.participants)

    def to_statement(self) -> Statement:
        name = subject_name(tenant=self.tenant, adapter=self.adapter, version=self.new_version)
        return Statement(subject=(Subject(name=name, digest={"sha256": self.aggregate_hash}),),
                         predicate_type=FEDERATION_ROUND_PREDICATE_TYPE, predicate=self._predicate())

    def _predicate(self) -> dict[str, Any]:
        """The fields as JSON values: nested dataclasses (the window, each participant and failure) as objects."""
        predicate = _to_json(self)
        predicate["participants"] = [_to_json(p) for p in self.participants]
        predicate["failures"] = [_to_json(f) for f in self.failures]
        return predicate

    @classmethod
    def from_statement(cls, statement: Statement) -> RoundManifest:
        """The manifest a Statement carries; it must write back the very same statement.

        Raises:
            ManifestError: wrong predicate type, fields missing or extra, invalid values, or a subject other
                than the new version with sha256 = aggregate_hash.
        """
        if statement.predicate_type != FEDERATION_ROUND_PREDICATE_TYPE:
            raise ManifestError(
                f"predicateType {statement.predicate_type[:80]!r} is not {FEDERATION_ROUND_PREDICATE_TYPE!r}")
        manifest = _round_from_json(statement.to_dict()["predicate"])
        _require_same_statement(manifest.to_statement(), statement, digest_field="aggregate_hash")
        return manifest


def _round_from_json(data: Any) -> RoundManifest:
    """Build a RoundManifest from its predicate, with exactly its fields; nested lists and the window by class."""
    names = {f.name for f in fields(RoundManifest)}
    if not isinstance(data, dict) or set(data) != names:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ManifestError(f"predicate must have exactly the fields {sorted(names)}, found {found}")
    for name in ("participants", "failures", "key_ids"):
        if not isinstance(data[name], list):
            raise ManifestError(f"predicate.{name} must be a list")
    values = dict(data)
    values["key_ids"] = tuple(data["key_ids"])
    values["participants"] = tuple(_from_json(Participant, p, where="predicate.participants[]")
                                   for p in data["participants"])
    values["failures"] = tuple(_from_json(Failure, f, where="predicate.failures[]") for f in data["failures"])
    values["window"] = _from_json(ValidityWindow, data["window"], where="predicate.window")
    return RoundManifest(**values)


def sign_round_manifest(manifest: RoundManifest, *, signers: Sequence[Signer]) -> bytes:
    """The DSSE envelope bytes of the round's Statement, signed by each signer.

    Raises:
        ValueError: a signer's key id is not in manifest.key_ids, or as `sign_statement`.
    """
    unlisted = [s.public_key.keyid for s in signers if s.public_key.keyid not in manifest.key_ids]
    if unlisted:
        raise ValueError(f"signers {unlisted} are not in the round manifest's key_ids; add them before signing")
    return sign_statement(manifest.to_statement(), signers=signers)


@dataclass(frozen=True)
class SignedRound:
    """A verified round manifest and the registered keys whose signatures counted."""

    manifest: RoundManifest
    key_ids: tuple[str, ...]


def verify_round_manifest(
    data: bytes, *, keys: Iterable[KeyLike], threshold: int, tenant: str, adapter: str
) -> SignedRound:
    """Verify a signed round manifest against the federation's registered keys (signatures before parsing).

    Raises:
        MalformedEnvelopeError: the envelope or statement does not parse.
        SignatureError: fewer than `threshold` registered keys listed in key_ids signed.
        ManifestError: the manifest is invalid, or names another tenant or adapter.
    """
    label = f"adapter {tenant}/{adapter}"
    envelope = parse_envelope(data)
    accepted = verify_signatures(envelope, keys=keys, threshold=threshold, label=label)
    manifest = RoundManifest.from_statement(Statement.from_bytes(envelope.payload))
    if (manifest.tenant, manifest.adapter) != (tenant, adapter):
        raise ManifestError(f"{label}: the round manifest is for {manifest.tenant}/{manifest.adapter}")
    counted = tuple(sorted(set(accepted) & set(manifest.key_ids)))
    if len(counted) < threshold:
        raise SignatureError(f"{manifest.label}: signed by {len(counted)} of {threshold} required keys listed in key_ids")
    return SignedRound(manifest, counted)


def verify_round_receipt(data: bytes, *, server_key: KeyLike, manifest: RoundManifest) -> Receipt:
    """Verify the server's receipt for a committed round: its signature, and that it answers `manifest`.

    Raises:
        MalformedEnvelopeError, SignatureError: as `verify_envelope`.
        ManifestError: the receipt answers another request, version or aggregate.
    """
    statement = verify_envelope(data, keys=[server_key], threshold=1, label=f"receipt for {manifest.label}")
    receipt = Receipt.from_statement(statement)
    expected = replace(receipt, tenant=manifest.tenant, adapter=manifest.adapter, request_id=manifest.request_id,
                       new_version=manifest.new_version, new_adapter_hash=manifest.aggregate_hash)
    if receipt != expected:
        raise ManifestError(f"receipt for {manifest.label} answers another request, version or aggregate")
    return receipt
