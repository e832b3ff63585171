"""Signed checkpoints of the audit log: {size, head hash, time}, an in-toto Statement in a DSSE envelope.

A checkpoint says "the log had `size` entries and its last entry hash was `head_hash`" under the server's
key, so anyone holding one can later prove the log was not rewritten below that size. The Statement's one
subject is `loravault-audit-log@<size>` with sha256 = head_hash; predicateType CHECKPOINT_PREDICATE_TYPE.
"""

from __future__ import annotations

from dataclasses import dataclass

from securesystemslib.signer import Signer

from loravault.core.errors import InvalidArgumentError
from loravault.proto.digests import is_sha256_hex
from loravault.proto.envelope import KeyLike, sign_statement, verify_envelope
from loravault.proto.errors import ManifestError
from loravault.proto.statement import Statement, Subject

__all__ = ["CHECKPOINT_PREDICATE_TYPE", "Checkpoint", "sign_checkpoint", "verify_checkpoint"]

CHECKPOINT_PREDICATE_TYPE = "urn:loravault:audit-checkpoint:v1"


@dataclass(frozen=True)
class Checkpoint:
    size: int  # entries in the log when signed
    head_hash: str  # entry hash of entry size-1 (GENESIS_HASH for an empty log)
    time: int  # Unix seconds (UTC)

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 0 or not isinstance(self.time, int) or self.time < 0:
            raise InvalidArgumentError("checkpoint size and time must be integers >= 0")
        if not is_sha256_hex(self.head_hash):
            raise InvalidArgumentError("checkpoint head_hash must be 64 lowercase hex digits")

    def to_statement(self) -> Statement:
        return Statement(
            subject=(Subject(name=f"loravault-audit-log@{self.size}", digest={"sha256": self.head_hash}),),
            predicate_type=CHECKPOINT_PREDICATE_TYPE,
            predicate={"size": self.size, "head_hash": self.head_hash, "time": self.time},
        )


def sign_checkpoint(checkpoint: Checkpoint, *, signer: Signer) -> bytes:
    """The DSSE envelope bytes of the checkpoint, signed by the server's key."""
    return sign_statement(checkpoint.to_statement(), signers=[signer])


def verify_checkpoint(data: bytes, *, server_key: KeyLike) -> Checkpoint:
    """Verify the server's signature and return the checkpoint.

    Raises MalformedEnvelopeError, SignatureError (loravault.proto.errors), or ManifestError when the signed
    statement is not a checkpoint in its one canonical form.
    """
    statement = verify_envelope(data, keys=[server_key], threshold=1, label="audit checkpoint")
    if statement.predicate_type != CHECKPOINT_PREDICATE_TYPE:
        raise ManifestError(f"predicateType {statement.predicate_type[:80]!r} is not {CHECKPOINT_PREDICATE_TYPE!r}")
    predicate = statement.to_dict()["predicate"]
    try:
        checkpoint = Checkpoint(size=predicate["size"], head_hash=predicate["head_hash"], time=predicate["time"])
    except (KeyError, TypeError, InvalidArgumentError) as exc:
        raise ManifestError(f"audit checkpoint predicate is invalid: {exc}") from exc
    if checkpoint.to_statement().to_bytes() != statement.to_bytes():
        raise ManifestError("audit checkpoint statement is not in its canonical form")
    return checkpoint
