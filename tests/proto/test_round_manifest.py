"""The federation-round manifest: one canonical signed form, threshold signatures, and hostile variants refused."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from loravault.proto.envelope import parse_envelope
from loravault.proto.errors import MalformedEnvelopeError, ManifestError, SignatureError
from loravault.proto.federation import (
    Failure,
    Participant,
    RoundManifest,
    sign_round_manifest,
    verify_round_manifest,
)
from loravault.proto.keys import generate_private_key_pem, public_key_dict, signer_from_pem
from loravault.proto.manifest import ValidityWindow, new_request_id
from loravault.proto.statement import Statement

H = "ab" * 32


def signer():
    return signer_from_pem(generate_private_key_pem())


def manifest(signers, **changes):
    now = int(time.time())
    fields = dict(
        tenant="fed", adapter="shared", key_ids=tuple(s.public_key.keyid for s in signers),
        request_id=new_request_id(), base_fingerprint=H, parent_version=3, parent_hash="cd" * 32, round=3,
        new_version=4, aggregate_hash="ef" * 32, aggregation="stack", effective_weight_error=0.5,
        truncation_error=0.5,
        participants=(Participant("12", "client-1", "01" * 32, 5), Participant("7", "client-0", "02" * 32, 3)),
        failures=(Failure("99", "no reply within the round timeout"),),
        window=ValidityWindow(issued_at=now, expires_at=now + 600))
    fields.update(changes)
    return RoundManifest(**fields)


def test_a_signed_round_verifies_and_reads_back_exactly():
    s = signer()
    m = manifest([s])
    signed = verify_round_manifest(sign_round_manifest(m, signers=[s]), keys=[public_key_dict(s)], threshold=1,
                                   tenant="fed", adapter="shared")
    assert signed.manifest == m and signed.key_ids == (s.public_key.keyid,)
    assert [p.node_id for p in m.participants] == ["7", "12"]  # sorted by node id: one canonical form
    assert m.total_samples == 8


def test_threshold_two_needs_two_registered_keys_listed_in_key_ids():
    a, b = signer(), signer()
    m = manifest([a, b])
    keys = [public_key_dict(a), public_key_dict(b)]
    with pytest.raises(SignatureError, match="signed by 1 of 2"):
        verify_round_manifest(sign_round_manifest(m, signers=[a]), keys=keys, threshold=2, tenant="fed",
                              adapter="shared")
    assert verify_round_manifest(sign_round_manifest(m, signers=[a, b]), keys=keys, threshold=2, tenant="fed",
                                 adapter="shared").key_ids == tuple(sorted(k.public_key.keyid for k in (a, b)))


def _resigned(payload: dict, s) -> bytes:
    """An envelope over `payload` (a Statement dict), signed: the signature is valid, the content is not."""
    from loravault.proto.envelope import sign_statement

    return sign_statement(Statement.from_dict(payload), signers=[s])


@pytest.mark.parametrize("edit, match", [
    (lambda p: p["predicate"].update(round=0), "round"),
    (lambda p: p["predicate"].update(new_version=9), "new_version"),
    (lambda p: p["predicate"].update(aggregation="median"), "aggregation"),
    (lambda p: p["predicate"]["participants"].reverse(), "canonical"),
    (lambda p: p["predicate"]["participants"].append(dict(p["predicate"]["participants"][0])), "twice"),
    (lambda p: p["predicate"].update(extra=1), "exactly the fields"),
    (lambda p: p["subject"][0].update(digest={"sha256": "00" * 32}), "subject"),
    (lambda p: p.update(predicateType="urn:loravault:erasure:v1"), "predicateType"),
], ids=["round-0", "version-skip", "unknown-method", "unsorted-participants", "duplicate-node", "extra-field",
        "subject-hash", "wrong-type"])
def test_signed_but_invalid_rounds_are_refused(edit, match):
    s = signer()
    payload = manifest([s]).to_statement().to_dict()
    edit(payload)
    with pytest.raises(ManifestError, match=match):
        verify_round_manifest(_resigned(payload, s), keys=[public_key_dict(s)], threshold=1, tenant="fed",
                              adapter="shared")


def test_a_tampered_payload_fails_the_signature_and_another_adapter_is_refused():
    s = signer()
    data = sign_round_manifest(manifest([s]), signers=[s])
    envelope = json.loads(data)
    other = json.loads(parse_envelope(data).payload)
    other["predicate"]["round"] = 4
    import base64

    envelope["payload"] = base64.b64encode(json.dumps(other, sort_keys=True, separators=(",", ":")).encode()).decode()
    with pytest.raises(SignatureError):
        verify_round_manifest(json.dumps(envelope).encode(), keys=[public_key_dict(s)], threshold=1, tenant="fed",
                              adapter="shared")
    with pytest.raises(ManifestError, match="is for fed/shared"):
        verify_round_manifest(data, keys=[public_key_dict(s)], threshold=1, tenant="fed", adapter="other")


def test_non_finite_errors_and_bad_participants_cannot_be_built():
    s = signer()
    with pytest.raises(ManifestError):
        manifest([s], effective_weight_error=float("nan"))
    with pytest.raises(ManifestError):
        dataclasses.replace(Participant("1", "client-0", "01" * 32, 1), num_samples=0)
    with pytest.raises(ManifestError):
        Participant("-1", "client-0", "01" * 32, 1)
    with pytest.raises(MalformedEnvelopeError):
        verify_round_manifest(b"{}", keys=[public_key_dict(s)], threshold=1, tenant="fed", adapter="shared")
