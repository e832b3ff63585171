"""Coverage-guided fuzzing of every parser that reads untrusted bytes: envelopes, statements, manifests,
receipts, public keys, and safetensors blobs.

Each parser documents one error type for bad input (MalformedEnvelopeError, SignatureError, ManifestError,
DeserializationError). TestOneInput catches exactly those; anything else (a KeyError, a RecursionError, an
assertion on a round trip) escapes, and libFuzzer records the input as a crash.

Run (libFuzzer flags pass through; a corpus folder is optional):

    python -m loravault.bench.fuzz_parsers -runs=20000
    python -m loravault.bench.fuzz_parsers -max_total_time=60 -artifact_prefix=/tmp/crash- corpus/

`seed_inputs()` gives one valid input per parser (a manifest envelope signed by the fuzz key, its statement,
a receipt statement, a public key, a safetensors blob); write them into the corpus folder to start deep.

When run as a program, the loravault.proto modules are instrumented for coverage; imported (by the tests), the
module just exposes TestOneInput.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys

import atheris

_FUZZING = __name__ == "__main__"

# Instrument only our parsers: instrumenting torch or cryptography would slow every run for nothing.
with atheris.instrument_imports(include=["loravault.proto"]) if _FUZZING else contextlib.nullcontext():
    from loravault.proto.envelope import envelope_to_bytes, parse_envelope, verify_envelope
    from loravault.proto.errors import MalformedEnvelopeError, ManifestError, SignatureError
    from loravault.proto.keys import public_key_dict, public_key_from_dict, signer_from_pem
    from loravault.proto.manifest import ErasureManifest, ErasureMethod, ForgetSet, ValidityWindow, sign_manifest
    from loravault.proto.receipt import Receipt
    from loravault.proto.statement import Statement, parse_json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from loravault.core.errors import DeserializationError
from loravault.core.tensors import decode_tensors

__all__ = ["TestOneInput", "seed_inputs", "main"]

logger = logging.getLogger(__name__)

# A fixed key, so that envelopes in a corpus signed by it reach the statement parser behind the signature check.
_FUZZ_SEED = hashlib.sha256(b"loravault fuzz key (public test data)").digest()
_FUZZ_SIGNER = signer_from_pem(
    Ed25519PrivateKey.from_private_bytes(_FUZZ_SEED).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
)
_FUZZ_KEYS = [public_key_dict(_FUZZ_SIGNER)]


def _fuzz_envelope(data: bytes) -> None:
    """Envelope parser, its round trip, and the verifier behind it."""
    try:
        envelope = parse_envelope(data)
    except MalformedEnvelopeError:
        return
    again = parse_envelope(envelope_to_bytes(envelope))
    assert again == envelope, "an envelope changed when written and parsed again"
    try:
        statement = verify_envelope(data, keys=_FUZZ_KEYS, threshold=1, label="fuzz")
    except (MalformedEnvelopeError, SignatureError):
        return
    _fuzz_predicates(statement)


def _fuzz_predicates(statement: Statement) -> None:
    """Manifest and receipt mapping of a parsed Statement, and their round trips."""
    for cls in (ErasureManifest, Receipt):
        try:
            parsed = cls.from_statement(statement)
        except ManifestError:
            continue
        assert parsed.to_statement() == statement, f"a {cls.__name__} changed through its statement"


def _fuzz_statement(data: bytes) -> None:
    """Statement parser (canonical form is enforced, so a parsed statement writes back the same bytes)."""
    try:
        statement = Statement.from_bytes(data)
    except MalformedEnvelopeError:
        return
    assert statement.to_bytes() == data, "a statement parsed from bytes it would not write"
    _fuzz_predicates(statement)


def _fuzz_public_key(data: bytes) -> None:
    """Public key dicts, as a tenant registers them."""
    try:
        key = public_key_from_dict(parse_json(data, what="public key"))
    except MalformedEnvelopeError:  # includes MalformedKeyError
        return
    assert public_key_from_dict(public_key_dict(key), expected_key_id=key.keyid) == key


def _fuzz_tensors(data: bytes) -> None:
    """The safetensors codec that reads uploaded adapters and deltas."""
    try:
        decode_tensors(data)
    except DeserializationError:
        return


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name libFuzzer's Python binding expects)
    """Feed one input to every parser; only their documented error types are expected."""
    _fuzz_envelope(data)
    _fuzz_statement(data)
    _fuzz_public_key(data)
    _fuzz_tensors(data)


def _sample_manifest() -> ErasureManifest:
    digest = hashlib.sha256(b"fuzz").hexdigest()
    return ErasureManifest(
        tenant="acme", adapter="support", key_ids=(_FUZZ_SIGNER.public_key.keyid,), request_id="0" * 32,
        base_fingerprint=digest, parent_version=1, parent_hash=digest, new_version=2, delta_hash=digest,
        result_hash=hashlib.sha256(b"result").hexdigest(),
        forget=ForgetSet(commitment=digest, count=1, train_size_before=10, train_size_after=9),
        method=ErasureMethod(solver="cg", curvature="ekfac", damping=0.01, iterations=3, residual=0.5),
        window=ValidityWindow(issued_at=1_700_000_000, expires_at=1_700_003_600),
    )


def seed_inputs() -> list[bytes]:
    """One valid input per parser, so the fuzzer starts past the first rejection of each."""
    manifest = _sample_manifest()
    receipt = Receipt(
        tenant="acme", adapter="support", request_id=manifest.request_id, log_index=0,
        entry_hash=manifest.delta_hash, new_version=2, new_adapter_hash=manifest.result_hash,
        committed_at=1_700_000_100,
    )
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    header += b" " * (-len(header) % 8)
    safetensors_blob = len(header).to_bytes(8, "little") + header + bytes(8)
    return [
        sign_manifest(manifest, signers=[_FUZZ_SIGNER]),
        manifest.to_statement().to_bytes(),
        receipt.to_statement().to_bytes(),
        json.dumps(public_key_dict(_FUZZ_SIGNER)).encode(),
        safetensors_blob,
    ]


def main(argv: list[str] | None = None) -> None:
    """Hand control to libFuzzer; it exits the process when the run ends or finds a crash."""
    logging.basicConfig(level=logging.WARNING)
    atheris.Setup(sys.argv if argv is None else argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
