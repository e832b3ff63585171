"""The erasure manifest and receipt: field validation, strict statement mapping, binding checks in
verify_manifest / verify_receipt, and the time window."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.proto.envelope import sign_statement
from loravault.proto.errors import ManifestError, SignatureError, TimeWindowError
from loravault.proto.keys import public_key_dict
from loravault.proto.manifest import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    ERASURE_PREDICATE_TYPE,
    ErasureManifest,
    ErasureMethod,
    ForgetSet,
    SignedManifest,
    ValidityWindow,
    check_time_window,
    new_request_id,
    sign_manifest,
    verify_manifest,
    verify_signed_manifest,
    verify_time_window,
)
from loravault.proto.receipt import (
    RECEIPT_PREDICATE_TYPE,
    Receipt,
    check_receipt,
    sign_receipt,
    verify_receipt,
)
from loravault.proto.statement import Statement, Subject

from conftest import GOLDEN_RECEIPT_FILE, golden_receipt_bytes

H = "ab" * 32


def replace(obj, **changes):
    return dataclasses.replace(obj, **changes)


# --- validation -------------------------------------------------------------------------------------------


def test_golden_manifest_is_valid_and_round_trips(golden_manifest):
    statement = golden_manifest.to_statement()
    assert statement.predicate_type == ERASURE_PREDICATE_TYPE
    assert statement.subject == (Subject(name="acme/support@v8", digest={"sha256": golden_manifest.result_hash}),)
    assert ErasureManifest.from_statement(Statement.from_bytes(statement.to_bytes())) == golden_manifest


MANIFEST_CHANGES = [
    pytest.param({"tenant": ""}, "tenant", id="empty-tenant"),
    pytest.param({"tenant": "acme/evil"}, "tenant", id="slash-in-tenant"),
    pytest.param({"adapter": ".hidden"}, "adapter", id="adapter-leading-dot"),
    pytest.param({"adapter": "a" * 65}, "adapter", id="adapter-too-long"),
    pytest.param({"adapter": "support\n"}, "adapter", id="adapter-trailing-newline"),
    pytest.param({"key_ids": ()}, "key_ids", id="no-key-ids"),
    pytest.param({"key_ids": ("xyz",)}, "key id", id="key-id-not-hex"),
    pytest.param({"key_ids": (H, H)}, "repeat", id="key-ids-repeat"),
    pytest.param({"key_ids": tuple(f"{i:064x}" for i in range(17))}, "key_ids", id="too-many-key-ids"),
    pytest.param({"request_id": "0123"}, "request_id", id="request-id-short"),
    pytest.param({"request_id": "0123456789ABCDEF0123456789ABCDEF"}, "request_id", id="request-id-uppercase"),
    pytest.param({"base_fingerprint": "AB" * 32}, "base_fingerprint", id="fingerprint-uppercase"),
    pytest.param({"parent_hash": "ab" * 31}, "parent_hash", id="parent-hash-short"),
    pytest.param({"delta_hash": None}, "delta_hash", id="delta-hash-missing"),
    pytest.param({"parent_version": 0, "new_version": 1}, "parent_version", id="parent-version-zero"),
    pytest.param({"new_version": 9}, "new_version", id="version-skips"),
    pytest.param({"new_version": 7}, "new_version", id="version-repeats"),
    pytest.param({"parent_version": True, "new_version": 2}, "parent_version", id="version-bool"),
    pytest.param({"parent_version": 7.0}, "parent_version", id="version-float"),
    pytest.param({"parent_version": 2**63, "new_version": 2**63 + 1}, "parent_version", id="version-overflow"),
    pytest.param({"result_hash": "__parent__"}, "change nothing", id="result-equals-parent"),
    pytest.param({"forget": {"commitment": H}}, "forget", id="forget-not-dataclass"),
]


@pytest.mark.parametrize(("changes", "message"), MANIFEST_CHANGES)
def test_manifest_refuses_invalid_fields(golden_manifest, changes, message):
    if changes.get("result_hash") == "__parent__":
        changes = {"result_hash": golden_manifest.parent_hash}
    with pytest.raises(ManifestError, match=message):
        replace(golden_manifest, **changes)


PART_CHANGES = [
    pytest.param("forget", {"commitment": "zz" * 32}, "commitment", id="commitment-not-hex"),
    pytest.param("forget", {"count": 0}, "count", id="forget-count-zero"),
    pytest.param("forget", {"count": 1001}, "exceeds", id="forget-more-than-trained"),
    pytest.param("forget", {"train_size_after": 990}, r"\[997, 1000\]", id="after-too-small"),
    pytest.param("forget", {"train_size_after": 1001}, r"\[997, 1000\]", id="after-grew"),
    pytest.param("method", {"solver": "CG"}, "solver", id="solver-uppercase"),
    pytest.param("method", {"curvature": ""}, "curvature", id="curvature-empty"),
    pytest.param("method", {"damping": -1.0}, "damping", id="damping-negative"),
    pytest.param("method", {"damping": float("nan")}, "damping", id="damping-nan"),
    pytest.param("method", {"residual": float("inf")}, "residual", id="residual-infinite"),
    pytest.param("method", {"residual": "0.1"}, "residual", id="residual-string"),
    pytest.param("method", {"iterations": -1}, "iterations", id="iterations-negative"),
    pytest.param("window", {"expires_at": 1_767_225_600}, "positive", id="expires-equals-issued"),
    pytest.param("window", {"expires_at": 1_767_225_000}, "positive", id="expires-before-issued"),
    pytest.param("window", {"expires_at": 1_767_225_600 + 86_401}, "at most 86400", id="window-over-24h"),
    pytest.param("window", {"issued_at": -5}, "issued_at", id="issued-negative"),
    pytest.param("window", {"issued_at": 1_767_225_600_000, "expires_at": 1_767_225_603_600}, "milliseconds",
                 id="milliseconds"),
]


@pytest.mark.parametrize(("part", "changes", "message"), PART_CHANGES)
def test_manifest_parts_refuse_invalid_fields(golden_manifest, part, changes, message):
    with pytest.raises(ManifestError, match=message):
        replace(getattr(golden_manifest, part), **changes)


def test_integer_damping_is_stored_as_float_so_signed_bytes_do_not_depend_on_it(golden_manifest):
    method = replace(golden_manifest.method, damping=1, residual=0)
    assert method.damping == 1.0 and isinstance(method.damping, float)
    manifest = replace(golden_manifest, method=method)
    assert b'"damping":1.0' in manifest.to_statement().to_bytes()


def test_key_ids_are_kept_sorted(golden_manifest):
    reversed_ids = tuple(reversed(golden_manifest.key_ids))
    assert replace(golden_manifest, key_ids=reversed_ids).key_ids == golden_manifest.key_ids


def test_new_request_id_is_128_random_bits():
    ids = {new_request_id() for _ in range(64)}
    assert len(ids) == 64
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# --- from_statement is strict -----------------------------------------------------------------------------


def _statement_with(golden_manifest, *, predicate=None, subject=None, predicate_type=ERASURE_PREDICATE_TYPE):
    base = golden_manifest.to_statement()
    return Statement(
        subject=base.subject if subject is None else subject,
        predicate_type=predicate_type,
        predicate=base.to_dict()["predicate"] if predicate is None else predicate,
    )


def _predicate(golden_manifest, **changes):
    predicate = golden_manifest.to_statement().to_dict()["predicate"]
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            if value is None:
                del predicate[outer][inner]
            else:
                predicate[outer][inner] = value
        elif value is None:
            del predicate[key]
        else:
            predicate[key] = value
    return predicate


FROM_STATEMENT = [
    pytest.param({"predicate_type": RECEIPT_PREDICATE_TYPE}, "predicateType", id="receipt-predicate-type"),
    pytest.param({"predicate": {"extra": 1}}, "exactly the fields", id="unknown-fields"),
    pytest.param({"subject": (Subject(name="acme/support@v9", digest={"sha256": H}),)}, "subject", id="wrong-subject"),
    pytest.param({"subject": "two"}, "subject", id="two-subjects"),
    pytest.param({"subject": "digest"}, "subject", id="subject-digest-not-result-hash"),
]


@pytest.mark.parametrize(("kwargs", "message"), FROM_STATEMENT)
def test_from_statement_refuses(golden_manifest, kwargs, message):
    if kwargs.get("subject") == "two":
        first = golden_manifest.to_statement().subject[0]
        kwargs = {"subject": (first, Subject(name="other", digest={"sha256": H}))}
    elif kwargs.get("subject") == "digest":
        kwargs = {"subject": (Subject(name="acme/support@v8", digest={"sha256": H}),)}
    with pytest.raises(ManifestError, match=message):
        ErasureManifest.from_statement(_statement_with(golden_manifest, **kwargs))


PREDICATE_EDITS = [
    pytest.param({"tenant": None}, "exactly the fields", id="missing-tenant"),
    pytest.param({"surprise": 1}, "exactly the fields", id="extra-field"),
    pytest.param({"forget.count": None}, "predicate.forget", id="missing-nested-field"),
    pytest.param({"method.extra": 1}, "predicate.method", id="extra-nested-field"),
    pytest.param({"window": [1, 2]}, "predicate.window", id="window-not-object"),
    pytest.param({"key_ids": "__reversed__"}, "key_ids must be sorted", id="key-ids-unsorted"),
    pytest.param({"key_ids": "abc"}, "key_ids", id="key-ids-string"),
    pytest.param({"parent_version": "7"}, "parent_version", id="version-as-string"),
    pytest.param({"new_version": 8.0}, "new_version", id="version-as-float"),
    pytest.param({"method.damping": 1}, "canonical form", id="damping-written-as-integer"),
]


@pytest.mark.parametrize(("edits", "message"), PREDICATE_EDITS)
def test_from_statement_refuses_bad_predicates(golden_manifest, edits, message):
    if edits.get("key_ids") == "__reversed__":
        edits = {"key_ids": list(reversed(golden_manifest.key_ids))}
    statement = _statement_with(golden_manifest, predicate=_predicate(golden_manifest, **edits))
    with pytest.raises(ManifestError, match=message):
        ErasureManifest.from_statement(statement)


# --- verify_manifest: binding to the request --------------------------------------------------------------


def keys_of(signers, *names):
    return [public_key_dict(signers[name]) for name in names]


def test_verify_manifest_refuses_another_tenants_manifest(signers, golden_manifest):
    """acme's keys signed a manifest for acme; a request made as tenant globex must not accept it."""
    data = sign_manifest(golden_manifest, signers=[signers["tenant_a1"]])
    with pytest.raises(ManifestError, match="is for acme/support"):
        verify_manifest(data, keys=keys_of(signers, "tenant_a1"), threshold=1, tenant="globex", adapter="support")
    with pytest.raises(ManifestError, match="is for acme/support"):
        verify_manifest(data, keys=keys_of(signers, "tenant_a1"), threshold=1, tenant="acme", adapter="billing")


def test_verify_manifest_counts_only_keys_listed_in_key_ids(signers, golden_manifest):
    """tenant_b's key is registered but not listed in the manifest: its signature does not count."""
    manifest = replace(golden_manifest, key_ids=(signers["tenant_a1"].public_key.keyid,))
    statement_bytes = sign_statement(manifest.to_statement(), signers=[signers["tenant_a1"], signers["tenant_b"]])
    keys = keys_of(signers, "tenant_a1", "tenant_b")
    with pytest.raises(SignatureError, match=r"^adapter acme/support v8: signed by 1 of 2 required keys listed"):
        verify_manifest(statement_bytes, keys=keys, threshold=2, tenant="acme", adapter="support")
    assert verify_manifest(statement_bytes, keys=keys, threshold=1, tenant="acme", adapter="support") == manifest
    signed = verify_signed_manifest(statement_bytes, keys=keys, threshold=1, tenant="acme", adapter="support")
    assert signed == SignedManifest(manifest, (signers["tenant_a1"].public_key.keyid,))


def test_verify_manifest_below_threshold(signers, golden_manifest):
    data = sign_manifest(golden_manifest, signers=[signers["tenant_a1"]])
    with pytest.raises(SignatureError, match="^adapter acme/support: signed by 1 of 2 required keys$"):
        verify_manifest(data, keys=keys_of(signers, "tenant_a1", "tenant_a2"), threshold=2,
                        tenant="acme", adapter="support")


def test_sign_manifest_refuses_a_signer_not_in_key_ids(signers, golden_manifest):
    with pytest.raises(ValueError, match="key_ids"):
        sign_manifest(golden_manifest, signers=[signers["tenant_b"]])


def test_verify_manifest_refuses_a_statement_of_another_predicate_type(signers, golden_receipt):
    data = sign_receipt(golden_receipt, signer=signers["tenant_a1"])
    with pytest.raises(ManifestError, match="predicateType"):
        verify_manifest(data, keys=keys_of(signers, "tenant_a1"), threshold=1, tenant="acme", adapter="support")


# --- time window ------------------------------------------------------------------------------------------

ISSUED, EXPIRES = 1_767_225_600, 1_767_229_200

TIME_WINDOW = [
    pytest.param(ISSUED, True, id="at-issue"),
    pytest.param(EXPIRES - 1, True, id="last-second"),
    pytest.param(EXPIRES, False, id="at-expiry"),
    pytest.param(EXPIRES + 86_400, False, id="a-day-late"),
    pytest.param(ISSUED - DEFAULT_CLOCK_SKEW_SECONDS, True, id="within-clock-skew"),
    pytest.param(ISSUED - DEFAULT_CLOCK_SKEW_SECONDS - 1, False, id="beyond-clock-skew"),
    pytest.param(ISSUED + 0.5, True, id="float-now"),
]


@pytest.mark.parametrize(("now", "valid"), TIME_WINDOW)
def test_time_window(golden_manifest, now, valid):
    result = check_time_window(golden_manifest, now=now)
    assert bool(result) is valid
    assert (result.reason == "") is valid
    if valid:
        verify_time_window(golden_manifest, now=now)
    else:
        with pytest.raises(TimeWindowError, match="adapter acme/support v8"):
            verify_time_window(golden_manifest, now=now)


def test_time_window_reasons_say_what_to_do(golden_manifest):
    assert "sign a new one" in check_time_window(golden_manifest, now=EXPIRES + 10).reason
    assert "clock" in check_time_window(golden_manifest, now=ISSUED - 3600).reason
    assert check_time_window(golden_manifest, now=ISSUED - 3600, clock_skew=3600)


def test_time_window_error_is_a_manifest_error():
    assert issubclass(TimeWindowError, ManifestError)


# --- receipts ---------------------------------------------------------------------------------------------


def test_receipt_round_trips_through_its_statement(golden_receipt):
    statement = golden_receipt.to_statement()
    assert statement.predicate_type == RECEIPT_PREDICATE_TYPE == "urn:loravault:erasure-receipt:v1"
    assert statement.subject[0].name == "acme/support@v8"
    assert statement.subject[0].digest["sha256"] == golden_receipt.new_adapter_hash
    assert Receipt.from_statement(Statement.from_bytes(statement.to_bytes())) == golden_receipt


def test_resigning_reproduces_the_golden_receipt_bytes():
    assert golden_receipt_bytes() == GOLDEN_RECEIPT_FILE.read_bytes()


def test_golden_receipt_verifies_against_the_server_key(signers, golden_manifest, golden_receipt):
    data = GOLDEN_RECEIPT_FILE.read_bytes()
    receipt = verify_receipt(data, server_key=public_key_dict(signers["server"]), manifest=golden_manifest)
    assert receipt == golden_receipt
    assert receipt.log_index == 41


def test_receipt_signed_by_another_key_is_refused(signers, golden_manifest, golden_receipt):
    data = sign_receipt(golden_receipt, signer=signers["tenant_a1"])
    with pytest.raises(SignatureError, match="receipt for adapter acme/support v8: signed by 0 of 1"):
        verify_receipt(data, server_key=public_key_dict(signers["server"]), manifest=golden_manifest)


RECEIPT_MISMATCH = [
    pytest.param({"request_id": "f" * 32}, "request_id", id="other-request"),
    pytest.param({"new_version": 9}, "new_version", id="other-version"),
    pytest.param({"new_adapter_hash": H}, "new_adapter_hash", id="other-adapter-hash"),
    pytest.param({"adapter": "billing"}, "adapter", id="other-adapter"),
]


@pytest.mark.parametrize(("changes", "field"), RECEIPT_MISMATCH)
def test_receipt_for_another_request_is_refused(signers, golden_manifest, golden_receipt, changes, field):
    receipt = replace(golden_receipt, **changes)
    result = check_receipt(receipt, manifest=golden_manifest)
    assert not result and field in result.reason
    data = sign_receipt(receipt, signer=signers["server"])
    with pytest.raises(ManifestError, match=field):
        verify_receipt(data, server_key=public_key_dict(signers["server"]), manifest=golden_manifest)


@pytest.mark.parametrize(
    "changes",
    [{"log_index": -1}, {"entry_hash": "x"}, {"new_version": 1}, {"committed_at": 2**41}, {"tenant": ""}],
    ids=["negative-log-index", "entry-hash-not-hex", "version-one", "committed-in-ms", "empty-tenant"],
)
def test_receipt_refuses_invalid_fields(golden_receipt, changes):
    with pytest.raises(ManifestError):
        replace(golden_receipt, **changes)


def test_tampered_golden_receipt_is_refused(signers, golden_manifest):
    document = json.loads(GOLDEN_RECEIPT_FILE.read_bytes())
    payload = base64.b64decode(document["payload"]).replace(b'"log_index":41', b'"log_index":40')
    document["payload"] = base64.b64encode(payload).decode()
    data = json.dumps(document).encode()
    with pytest.raises(SignatureError):
        verify_receipt(data, server_key=public_key_dict(signers["server"]), manifest=golden_manifest)


# --- property: any valid manifest survives signing and verification unchanged -----------------------------

hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@st.composite
def manifests(draw, key_id: str) -> ErasureManifest:
    parent = draw(st.integers(min_value=1, max_value=10**6))
    before = draw(st.integers(min_value=1, max_value=10**7))
    count = draw(st.integers(min_value=1, max_value=before))
    issued = draw(st.integers(min_value=0, max_value=2**35))
    parent_hash, result_hash = draw(st.lists(hex64, min_size=2, max_size=2, unique=True))
    return ErasureManifest(
        tenant=draw(names), adapter=draw(names), key_ids=(key_id,), request_id=draw(hex64)[:32],
        base_fingerprint=draw(hex64), parent_version=parent, parent_hash=parent_hash, new_version=parent + 1,
        delta_hash=draw(hex64), result_hash=result_hash,
        forget=ForgetSet(commitment=draw(hex64), count=count, train_size_before=before,
                         train_size_after=before - draw(st.integers(min_value=0, max_value=count))),
        method=ErasureMethod(solver="cg", curvature="ekfac",
                             damping=draw(st.floats(min_value=0, max_value=1e6)),
                             iterations=draw(st.integers(min_value=0, max_value=10**4)),
                             residual=draw(st.floats(min_value=0, max_value=1e3))),
        window=ValidityWindow(issued_at=issued, expires_at=issued + draw(st.integers(1, 86_400))),
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_valid_manifest_round_trips_through_a_signed_envelope(signers, data):
    signer = signers["tenant_a1"]
    manifest = data.draw(manifests(signer.public_key.keyid))
    envelope = sign_manifest(manifest, signers=[signer])
    verified = verify_manifest(envelope, keys=[public_key_dict(signer)], threshold=1,
                               tenant=manifest.tenant, adapter=manifest.adapter)
    assert verified == manifest
    assert sign_manifest(verified, signers=[signer]) == envelope
