"""DSSE envelopes: signing, strict parsing of untrusted bytes, threshold verification and its negatives,
and golden bytes (Ed25519 is deterministic, so re-signing must reproduce tests/data exactly)."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope

from loravault.proto.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    PAYLOAD_TYPE,
    check_signatures,
    envelope_to_bytes,
    parse_envelope,
    sign_statement,
    verify_envelope,
    verify_signatures,
)
from loravault.proto.errors import MalformedEnvelopeError, SignatureError
from loravault.proto.keys import public_key_dict
from loravault.proto.manifest import ErasureManifest, verify_manifest
from loravault.proto.statement import Statement, Subject

from conftest import GOLDEN_MANIFEST_FILE, golden_manifest_bytes

LABEL = "adapter acme/support"


@pytest.fixture(scope="module")
def statement() -> Statement:
    return Statement(
        subject=(Subject(name="acme/support@v8", digest={"sha256": "cd" * 32}),),
        predicate_type="urn:loravault:test:v1",
        predicate={"n": 1},
    )


def keys_of(signers, *names):
    return [public_key_dict(signers[name]) for name in names]


def _document(data: bytes) -> dict:
    return json.loads(data)


def _encode(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- the happy path ---------------------------------------------------------------------------------------


def test_signed_statement_verifies_and_returns_the_statement(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    assert _document(data)["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    verified = verify_envelope(data, keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)
    assert verified == statement


def test_two_of_two_signatures_meet_threshold_two(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"], signers["tenant_a2"]])
    envelope = parse_envelope(data)
    accepted = verify_signatures(envelope, keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=2, label=LABEL)
    assert accepted == tuple(sorted([signers["tenant_a1"].public_key.keyid, signers["tenant_a2"].public_key.keyid]))


def test_replayed_envelope_still_verifies(signers, statement):
    """Signatures carry no freshness: refusing a replay is the server's job (request ids, time windows)."""
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    keys = keys_of(signers, "tenant_a1")
    first = verify_envelope(data, keys=keys, threshold=1, label=LABEL)
    assert verify_envelope(bytes(data), keys=keys, threshold=1, label=LABEL) == first


def test_signing_is_deterministic_and_order_independent(signers, statement):
    a1, a2 = signers["tenant_a1"], signers["tenant_a2"]
    assert sign_statement(statement, signers=[a1, a2]) == sign_statement(statement, signers=[a2, a1])


def test_sign_refuses_two_signers_with_one_key(signers, statement):
    with pytest.raises(ValueError, match="distinct key ids"):
        sign_statement(statement, signers=[signers["tenant_a1"], signers["tenant_a1"]])
    with pytest.raises(ValueError):
        sign_statement(statement, signers=[])


# --- negatives: signatures --------------------------------------------------------------------------------


def test_wrong_key_does_not_verify(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    with pytest.raises(SignatureError, match=r"adapter acme/support: signed by 0 of 1 required keys"):
        verify_envelope(data, keys=keys_of(signers, "tenant_a2"), threshold=1, label=LABEL)


def test_key_of_another_tenant_does_not_count(signers, statement):
    """tenant_b signs a statement about acme's adapter; acme's registered keys reject it."""
    data = sign_statement(statement, signers=[signers["tenant_b"]])
    with pytest.raises(SignatureError, match="signed by 0 of 1"):
        verify_envelope(data, keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=1, label=LABEL)


def test_signature_under_a_registered_key_id_by_another_key_does_not_count(signers, statement):
    """An attacker labels its own signature with the victim's key id."""
    forged = _document(sign_statement(statement, signers=[signers["tenant_b"]]))
    forged["signatures"][0]["keyid"] = signers["tenant_a1"].public_key.keyid
    with pytest.raises(SignatureError, match="signed by 0 of 1"):
        verify_envelope(_encode(forged), keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)


def test_tampered_payload_does_not_verify(signers, statement):
    document = _document(sign_statement(statement, signers=[signers["tenant_a1"]]))
    other = Statement(subject=statement.subject, predicate_type=statement.predicate_type, predicate={"n": 2})
    document["payload"] = base64.b64encode(other.to_bytes()).decode()
    with pytest.raises(SignatureError):
        verify_envelope(_encode(document), keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)


def test_tampered_signature_does_not_verify(signers, statement):
    document = _document(sign_statement(statement, signers=[signers["tenant_a1"]]))
    sig = bytearray(base64.b64decode(document["signatures"][0]["sig"]))
    sig[10] ^= 0x01
    document["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(SignatureError):
        verify_envelope(_encode(document), keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)


def test_below_threshold_names_the_numbers(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"], signers["tenant_b"]])
    keys = keys_of(signers, "tenant_a1", "tenant_a2")
    check = check_signatures(parse_envelope(data), keys=keys, threshold=2, label=LABEL)
    assert not check
    assert check.accepted_key_ids == (signers["tenant_a1"].public_key.keyid,)
    assert check.reason == "adapter acme/support: signed by 1 of 2 required keys"
    with pytest.raises(SignatureError, match="^adapter acme/support: signed by 1 of 2 required keys$"):
        verify_envelope(data, keys=keys, threshold=2, label=LABEL)


def test_duplicate_signature_by_one_key_counts_once(signers, statement):
    document = _document(sign_statement(statement, signers=[signers["tenant_a1"]]))
    document["signatures"] = document["signatures"] * 2
    data = _encode(document)
    keys = keys_of(signers, "tenant_a1", "tenant_a2")
    assert len(parse_envelope(data).signatures) == 1
    with pytest.raises(SignatureError, match="signed by 1 of 2"):
        verify_envelope(data, keys=keys, threshold=2, label=LABEL)


def test_one_key_registered_twice_counts_once(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    keys = keys_of(signers, "tenant_a1", "tenant_a1")
    with pytest.raises(SignatureError, match="signed by 1 of 2"):
        verify_envelope(data, keys=keys, threshold=2, label=LABEL)


def test_threshold_above_the_number_of_keys_fails_with_the_count(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    with pytest.raises(SignatureError, match="signed by 1 of 3"):
        verify_envelope(data, keys=keys_of(signers, "tenant_a1"), threshold=3, label=LABEL)


@pytest.mark.parametrize("threshold", [0, -1, True, 1.0], ids=["zero", "negative", "bool", "float"])
def test_invalid_threshold_is_a_caller_bug(signers, statement, threshold):
    data = sign_statement(statement, signers=[signers["tenant_a1"]])
    with pytest.raises(ValueError, match="threshold"):
        verify_envelope(data, keys=keys_of(signers, "tenant_a1"), threshold=threshold, label=LABEL)


def test_signatures_by_unknown_keys_do_not_block_known_ones(signers, statement):
    data = sign_statement(statement, signers=[signers["tenant_b"], signers["tenant_a1"], signers["server"]])
    verified = verify_envelope(data, keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)
    assert verified == statement


def test_signature_is_checked_before_the_payload_is_parsed(signers):
    """An unsigned garbage payload must be refused as unauthenticated, not reach the statement parser."""
    envelope = Envelope(b"not json at all", PAYLOAD_TYPE, {})
    envelope.sign(signers["tenant_b"])
    with pytest.raises(SignatureError):
        verify_envelope(envelope_to_bytes(envelope), keys=keys_of(signers, "tenant_a1"), threshold=1, label=LABEL)
    with pytest.raises(MalformedEnvelopeError, match="statement"):
        verify_envelope(envelope_to_bytes(envelope), keys=keys_of(signers, "tenant_b"), threshold=1, label=LABEL)


# --- negatives: malformed bytes ---------------------------------------------------------------------------


def _valid_document() -> dict:
    return _document(golden_manifest_bytes())


def _with(**overrides) -> bytes:
    document = _valid_document()
    document.update(overrides)
    return _encode(document)


def _without(field: str) -> bytes:
    document = _valid_document()
    del document[field]
    return _encode(document)


def _signature(**overrides) -> bytes:
    document = _valid_document()
    document["signatures"][0].update(overrides)
    return _encode(document)


MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"\xff\xfe\x00{", id="not-utf8"),
    pytest.param(b"[]", id="json-array"),
    pytest.param(b'"payload"', id="json-string"),
    pytest.param(_without("payload"), id="missing-payload"),
    pytest.param(_without("payloadType"), id="missing-payload-type"),
    pytest.param(_without("signatures"), id="missing-signatures"),
    pytest.param(_with(extra="x"), id="extra-field"),
    pytest.param(_with(payloadType="application/json"), id="wrong-payload-type"),
    pytest.param(_with(payloadType=None), id="payload-type-null"),
    pytest.param(_with(payload="***not base64***"), id="payload-bad-base64"),
    pytest.param(_with(payload="eyJ"), id="payload-bad-padding"),
    pytest.param(_with(payload="QR=="), id="payload-non-canonical-base64"),
    pytest.param(_with(payload=5), id="payload-not-string"),
    pytest.param(_with(payload="é"), id="payload-non-ascii"),
    pytest.param(_with(signatures=[]), id="no-signatures"),
    pytest.param(_with(signatures={}), id="signatures-not-list"),
    pytest.param(_with(signatures=["sig"]), id="signature-not-object"),
    pytest.param(_signature(sig="!!"), id="sig-bad-base64"),
    pytest.param(_signature(sig=""), id="sig-empty"),
    pytest.param(_signature(sig=base64.b64encode(bytes(2000)).decode()), id="sig-too-long"),
    pytest.param(_signature(keyid=""), id="keyid-empty"),
    pytest.param(_signature(keyid=7), id="keyid-not-string"),
    pytest.param(_signature(extra=1), id="signature-extra-field"),
    pytest.param(_with(signatures=[{"keyid": "k", "sig": "AAAA"}] * 2 + [{"keyid": "k", "sig": "AAAB"}]),
                 id="two-different-sigs-one-keyid"),
    pytest.param(_with(signatures=[{"keyid": f"k{i}", "sig": "AAAA"} for i in range(MAX_SIGNATURES + 1)]),
                 id="too-many-signatures"),
    pytest.param(golden_manifest_bytes().replace(b'{"payload"', b'{"payload":"AAAA","payload"', 1),
                 id="duplicate-json-key"),
    pytest.param(b" " * (MAX_ENVELOPE_BYTES + 1), id="huge-input"),
    pytest.param(b"[" * 50_000, id="deeply-nested"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_parse_envelope_refuses_malformed(data):
    with pytest.raises(MalformedEnvelopeError) as info:
        parse_envelope(data)
    assert str(info.value)  # a message that says what is wrong


def test_parser_errors_chain_their_cause():
    with pytest.raises(MalformedEnvelopeError) as info:
        parse_envelope(b"{not json")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    with pytest.raises(MalformedEnvelopeError) as info:
        parse_envelope(_with(payload="***"))
    assert info.value.__cause__ is not None


def test_size_cap_is_checked_before_parsing():
    data = golden_manifest_bytes()
    with pytest.raises(MalformedEnvelopeError, match="more than the 100 allowed"):
        parse_envelope(data, max_bytes=100)


def test_parse_envelope_refuses_non_bytes():
    with pytest.raises(MalformedEnvelopeError):
        parse_envelope("a string")  # type: ignore[arg-type]


# --- golden bytes -----------------------------------------------------------------------------------------


def test_resigning_reproduces_the_golden_envelope_bytes():
    assert golden_manifest_bytes() == GOLDEN_MANIFEST_FILE.read_bytes()


def test_golden_envelope_verifies_to_the_expected_manifest(signers, golden_manifest):
    data = GOLDEN_MANIFEST_FILE.read_bytes()
    statement = verify_envelope(data, keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=2, label=LABEL)
    assert statement.predicate_type == "urn:loravault:erasure:v1"
    assert statement.subject[0].name == "acme/support@v8"
    assert ErasureManifest.from_statement(statement) == golden_manifest
    manifest = verify_manifest(
        data, keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=2, tenant="acme", adapter="support"
    )
    assert manifest == golden_manifest
    assert manifest.request_id == "0123456789abcdef0123456789abcdef"
    assert manifest.forget.commitment == "0082d49d0117269ad0d2e803edce8fe34bd04bea06ed2ba112723d60a9ed69e0"


def test_golden_envelope_fails_with_one_byte_of_payload_changed(signers):
    document = _document(GOLDEN_MANIFEST_FILE.read_bytes())
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[payload.index(b'"parent_version":7') + len('"parent_version":')] = ord("6")
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(SignatureError, match="signed by 0 of 2"):
        verify_envelope(_encode(document), keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=2, label=LABEL)
