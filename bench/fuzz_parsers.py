"""Coverage-guided fuzzing of every parser that reads untrusted bytes: envelopes, statements, manifests,
receipts, key rotations, public keys (as AddKey reads them), adapter schemas, and safetensors blobs and headers.

Each parser documents one error type for bad input (MalformedEnvelopeError, SignatureError, ManifestError,
DeserializationError). TestOneInput catches exactly those; anything else (a KeyError, a RecursionError, an
assertion on a round trip) escapes, and libFuzzer records the input as a crash.

Run (libFuzzer flags pass through; a corpus folder is optional):

    python -m loravault.bench.fuzz_parsers -runs=20000
    python -m loravault.bench.fuzz_parsers -max_total_time=60 -artifact_prefix=/tmp/crash- corpus/
    python -m loravault.bench.fuzz_parsers --target=schema -runs=1000000    # one parser only (TARGETS)

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
_INSTRUMENTED = ["loravault.proto", "loravault.core.adapter_schema", "loravault.core.tensor_stream",
                 "loravault.server.vault.keys"]
with atheris.instrument_imports(include=_INSTRUMENTED) if _FUZZING else contextlib.nullcontext():
    from loravault.core.adapter_schema import AdapterSchema, TensorSpec
    from loravault.core.tensor_stream import StreamingTensorCheck
    from loravault.proto.envelope import envelope_to_bytes, parse_envelope, verify_envelope
    from loravault.proto.errors import InvalidArgumentError, MalformedEnvelopeError, ManifestError, SignatureError
    from loravault.proto.keys import public_key_dict, public_key_from_dict, signer_from_pem
    from loravault.proto.manifest import ErasureManifest, ErasureMethod, ForgetSet, ValidityWindow, sign_manifest
    from loravault.proto.receipt import Receipt
    from loravault.proto.rotation import KeyRotation
    from loravault.proto.statement import Statement
    from loravault.proto.untrusted_json import parse_json
    from loravault.server.vault.keys import parse_public_key

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
    """Manifest, receipt and key-rotation mapping of a parsed Statement, and their round trips."""
    for cls in (ErasureManifest, Receipt, KeyRotation):
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
    """Public key JSON, as AddKey reads it (the bounded JSON parser, then the vault's key check)."""
    try:
        keyid, canonical = parse_public_key(parse_json(data, what="public key", max_bytes=4096))
    except InvalidArgumentError:  # includes MalformedEnvelopeError and the weak-key refusal
        return
    assert public_key_from_dict(canonical, expected_key_id=keyid).keyid == keyid


def _fuzz_schema(data: bytes) -> None:
    """Adapter schemas as the vault stores and reads them; a parsed schema writes back what it parses to."""
    try:
        schema = AdapterSchema.from_json(data)
    except InvalidArgumentError:  # includes DeserializationError
        return
    assert AdapterSchema.from_json(schema.to_json()) == schema, "a schema changed through its JSON"


# the schema a streamed upload or delta is checked against (two tensors, rank 2)
_STREAM_SCHEMA = AdapterSchema(rank=2, alpha=4.0, target_modules=("q_proj",), dtype="float32",
                               tensors=(TensorSpec("m.q_proj.lora_A.weight", (2, 3)),
                                        TensorSpec("m.q_proj.lora_B.weight", (3, 2))),
                               base_fingerprint="0" * 64)


def _fuzz_tensors(data: bytes) -> None:
    """The safetensors codec that reads adapters and deltas, and the streaming header and value check."""
    try:
        decode_tensors(data)
    except DeserializationError:
        pass
    check = StreamingTensorCheck(_STREAM_SCHEMA, what="fuzz")
    try:
        for start in range(0, len(data), 7):  # odd chunk sizes: headers and values split across chunks
            check.feed(data[start : start + 7])
        check.finish()
    except InvalidArgumentError:
        return


TARGETS = {"envelope": _fuzz_envelope, "statement": _fuzz_statement, "public_key": _fuzz_public_key,
           "schema": _fuzz_schema, "tensors": _fuzz_tensors}


def TestOneInput(data: bytes, targets: tuple[str, ...] = tuple(TARGETS)) -> None:  # noqa: N802 (libFuzzer's name)
    """Feed one input to each parser in `targets`; only their documented error types are expected."""
    for name in targets:
        TARGETS[name](data)


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
        _STREAM_SCHEMA.to_json().encode(),
    ]


def main(argv: list[str] | None = None) -> None:
    """Hand control to libFuzzer; it exits the process when the run ends or finds a crash.

    `--target=NAME` (one of TARGETS) fuzzes that parser alone; the other arguments are libFuzzer's.
    """
    logging.basicConfig(level=logging.WARNING)
    args = list(sys.argv if argv is None else argv)
    chosen = tuple(a.removeprefix("--target=") for a in args if a.startswith("--target=")) or tuple(TARGETS)
    unknown = sorted(set(chosen) - set(TARGETS))
    if unknown:
        raise SystemExit(f"unknown fuzz target(s) {unknown}; choose from {sorted(TARGETS)}")
    atheris.Setup([a for a in args if not a.startswith("--target=")], lambda data: TestOneInput(data, chosen))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
