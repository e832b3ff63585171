"""The erasure receipt: what the server signs once an erasure is committed, and what the client keeps.

The receipt is the predicate of an in-toto Statement (predicateType `urn:loravault:erasure-receipt:v1`) whose
one subject is the committed adapter version `tenant/adapter@v<new_version>` with the sha256 of its blob. It
ties the tenant's request id to the audit log (entry index and hash), so the tenant can later show that its
erasure is in the log. The server signs it with its own Ed25519 key in a DSSE envelope (threshold 1).

Example (server side, then client side):

    data = sign_receipt(receipt, signer=server_signer)
    receipt = verify_receipt(data, server_key=server_public_key_dict, manifest=manifest)
"""

from __future__ import annotations

from dataclasses import dataclass

from securesystemslib.signer import Signer

from .envelope import KeyLike, sign_statement, verify_envelope
from .errors import ManifestError
from .manifest import (
    ErasureManifest,
    _from_json,
    _require_hex64,
    _require_int,
    _require_name,
    _require_request_id,
    _require_same_statement,
    _require_time,
    _to_json,
    subject_name,
)
from .statement import Statement, Subject

__all__ = [
    "RECEIPT_PREDICATE_TYPE",
    "Receipt",
    "ReceiptCheck",
    "sign_receipt",
    "check_receipt",
    "verify_receipt",
]

RECEIPT_PREDICATE_TYPE = "urn:loravault:erasure-receipt:v1"


@dataclass(frozen=True)
class Receipt:
    """The server's statement that an erasure request was committed as a new adapter version."""

    # which request
    tenant: str
    adapter: str
    request_id: str  # the manifest's request id
    # where it is recorded
    log_index: int  # position of the audit log entry, >= 0
    entry_hash: str  # SHA-256 of that entry (hash-chained)
    # what it produced
    new_version: int
    new_adapter_hash: str  # SHA-256 of the new version's blob
    committed_at: int  # Unix seconds (UTC)

    def __post_init__(self) -> None:
        _require_name(self.tenant, field_name="tenant")
        _require_name(self.adapter, field_name="adapter")
        _require_request_id(self.request_id)
        _require_int(self.log_index, field_name="log_index", minimum=0)
        _require_hex64(self.entry_hash, field_name="entry_hash")
        _require_int(self.new_version, field_name="new_version", minimum=2)
        _require_hex64(self.new_adapter_hash, field_name="new_adapter_hash")
        _require_time(self.committed_at, field_name="committed_at")

    def to_statement(self) -> Statement:
        """The in-toto Statement that carries this receipt (subject: the committed adapter version)."""
        name = subject_name(tenant=self.tenant, adapter=self.adapter, version=self.new_version)
        return Statement(
            subject=(Subject(name=name, digest={"sha256": self.new_adapter_hash}),),
            predicate_type=RECEIPT_PREDICATE_TYPE,
            predicate=_to_json(self),
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> Receipt:
        """The receipt a Statement carries, refusing any unknown, missing or inconsistent field.

        Raises:
            ManifestError: wrong predicate type, fields missing or extra, invalid values, or a subject other
                than the new adapter version with sha256 = new_adapter_hash.
        """
        if statement.predicate_type != RECEIPT_PREDICATE_TYPE:
            raise ManifestError(f"predicateType {statement.predicate_type[:80]!r} is not {RECEIPT_PREDICATE_TYPE!r}")
        receipt = _from_json(cls, statement.to_dict()["predicate"], where="receipt predicate")
        _require_same_statement(receipt.to_statement(), statement, digest_field="new_adapter_hash")
        return receipt


@dataclass(frozen=True)
class ReceiptCheck:
    """The outcome of `check_receipt`: truthy when the receipt answers the manifest, else falsy with the reason."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


def sign_receipt(receipt: Receipt, *, signer: Signer) -> bytes:
    """The DSSE envelope bytes of the receipt's Statement, signed by the server's key."""
    return sign_statement(receipt.to_statement(), signers=[signer])


def check_receipt(receipt: Receipt, *, manifest: ErasureManifest) -> ReceiptCheck:
    """Whether the receipt answers exactly this manifest: same request, version and resulting adapter hash."""
    expected = {
        "tenant": manifest.tenant,
        "adapter": manifest.adapter,
        "request_id": manifest.request_id,
        "new_version": manifest.new_version,
        "new_adapter_hash": manifest.result_hash,
    }
    for name, want in expected.items():
        got = getattr(receipt, name)
        if got != want:
            return ReceiptCheck(f"receipt for {manifest.label}: {name} is {got}, the manifest asked for {want}")
    return ReceiptCheck()


def verify_receipt(data: bytes, *, server_key: KeyLike, manifest: ErasureManifest) -> Receipt:
    """Verify the server's signature on a receipt and that it answers `manifest`; returns the receipt.

    Raises:
        MalformedEnvelopeError: the envelope or statement does not parse.
        SignatureError: not signed by `server_key`.
        ManifestError: the receipt is invalid or answers another request.
    """
    statement = verify_envelope(data, keys=[server_key], threshold=1, label=f"receipt for {manifest.label}")
    receipt = Receipt.from_statement(statement)
    result = check_receipt(receipt, manifest=manifest)
    if not result:
        raise ManifestError(result.reason)
    return receipt
