"""The key-rotation format the client signs and the server verifies: canonical, self-validating, signed bytes."""

from __future__ import annotations

import pytest

from loravault.proto import (
    KeyRotation,
    ManifestError,
    MalformedKeyError,
    generate_private_key_pem,
    key_id,
    public_key_dict,
    sign_key_rotation,
    signer_from_pem,
    verify_envelope,
)


def _signer():
    return signer_from_pem(generate_private_key_pem())


def test_signed_rotation_round_trips_through_the_envelope_with_keys_sorted() -> None:
    old, first, second = _signer(), _signer(), _signer()
    new = [public_key_dict(first), public_key_dict(second)]
    envelope = sign_key_rotation(tenant="acme", new_keys=list(reversed(new)), threshold=2, replaces=[key_id(public_key_dict(old))],
                                 issued_at=100, expires_at=200, signers=[old])
    statement = verify_envelope(envelope, keys=[public_key_dict(old)], threshold=1)
    rotation = KeyRotation.from_statement(statement)
    assert rotation.tenant == "acme" and rotation.threshold == 2 and (rotation.issued_at, rotation.expires_at) == (100, 200)
    assert [key_id(k) for k in rotation.keys] == sorted(key_id(k) for k in new)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"threshold": 3}, ManifestError, id="threshold-above-key-count"),
        pytest.param({"threshold": 0}, ManifestError, id="threshold-zero"),
        pytest.param({"expires_at": 100}, ManifestError, id="empty-window"),
        pytest.param({"expires_at": 10**9}, ManifestError, id="window-too-long"),
        pytest.param({"new_keys": []}, ManifestError, id="no-keys"),
        pytest.param({"new_keys": [{"keytype": "ed25519"}]}, MalformedKeyError, id="malformed-key"),
    ],
)
def test_malformed_rotations_are_refused_before_anything_is_signed(change, error) -> None:
    signer = _signer()
    arguments = {"tenant": "acme", "new_keys": [public_key_dict(_signer()), public_key_dict(_signer())], "threshold": 1,
                 "replaces": [], "issued_at": 100, "expires_at": 200, "signers": [signer], **change}
    with pytest.raises(error):
        sign_key_rotation(**arguments)
