"""Weak Ed25519 public keys are refused wherever a key enters: the small-order points in every encoding,
non-canonical encodings, and bytes that are not a point of the prime-order subgroup."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.signer import SSlibKey

from loravault.core.errors import InvalidArgumentError
from loravault.proto.errors import MalformedKeyError
from loravault.proto.keys import check_public_key_bytes, key_id, public_key_from_dict
from loravault.server.vault.keys import parse_public_key

P = 2**255 - 19


def _encode(y: int, sign: int = 0) -> bytes:
    return (y | (sign << 255)).to_bytes(32, "little")


# The eight points of small order (orders 1, 2, 4 and 8) in their canonical encodings, then the same points in
# every other encoding an attacker can write: the x sign bit set on x = 0, and y + p where it fits in 255 bits
# (only y < 19 does, so y = 0 and y = 1), then other non-canonical y.
_ORDER_8_Y = (0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7,
              0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826)
SMALL_ORDER = {
    "identity (order 1)": _encode(1),
    "y=-1 (order 2)": _encode(P - 1),
    "y=0, x+ (order 4)": _encode(0),
    "y=0, x- (order 4)": _encode(0, 1),
    "order 8, y1, x+": _encode(_ORDER_8_Y[0]),
    "order 8, y1, x-": _encode(_ORDER_8_Y[0], 1),
    "order 8, y2, x+": _encode(_ORDER_8_Y[1]),
    "order 8, y2, x-": _encode(_ORDER_8_Y[1], 1),
}
NON_CANONICAL = {
    "identity with sign bit (x=0)": _encode(1, 1),
    "y=-1 with sign bit (x=0)": _encode(P - 1, 1),
    "identity as y=p+1": _encode(P + 1),
    "y=0 as y=p": _encode(P),
    "y=0 as y=p, sign bit": _encode(P, 1),
    "y=p+2": _encode(P + 2),
    "32 bytes of ff": b"\xff" * 32,
}
NOT_A_POINT = {"y=2 (x^2 has no root)": _encode(2), "11 x 32 (off the prime-order subgroup)": b"\x11" * 32}
WEAK = {**SMALL_ORDER, **NON_CANONICAL, **NOT_A_POINT}


def _as_dict(public: bytes) -> dict:
    return {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public.hex()}}


def test_the_table_holds_the_known_encodings():
    """The literature's byte strings (libsodium's blocklist), so the table above is not wrong by construction."""
    assert SMALL_ORDER["identity (order 1)"].hex() == "01" + "00" * 31
    assert SMALL_ORDER["y=-1 (order 2)"].hex() == "ec" + "ff" * 30 + "7f"
    assert SMALL_ORDER["order 8, y1, x+"].hex() == "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    assert SMALL_ORDER["order 8, y2, x+"].hex() == "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
    assert len(set(WEAK.values())) == len(WEAK)


@pytest.mark.parametrize("public", WEAK.values(), ids=WEAK.keys())
def test_weak_key_refused_by_the_one_check(public):
    with pytest.raises(MalformedKeyError, match="weak Ed25519 key"):
        check_public_key_bytes(public)
    with pytest.raises(MalformedKeyError, match="weak Ed25519 key"):
        public_key_from_dict(_as_dict(public))


@pytest.mark.parametrize("public", WEAK.values(), ids=WEAK.keys())
def test_weak_key_refused_by_the_vault_with_invalid_argument(public):
    with pytest.raises(InvalidArgumentError, match="weak Ed25519 key"):
        parse_public_key(_as_dict(public))


def test_real_keys_pass_and_keep_securesystemslib_key_ids():
    for seed in range(8):
        signer_key = Ed25519PrivateKey.from_private_bytes(bytes([seed + 1]) * 32)
        raw = signer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        check_public_key_bytes(raw)
        parsed = public_key_from_dict(_as_dict(raw))
        assert parsed.keyid == SSlibKey.from_crypto(signer_key.public_key()).keyid == key_id(_as_dict(raw))
        assert parse_public_key(_as_dict(raw)) == (parsed.keyid, _as_dict(raw))


def test_the_identity_key_really_makes_every_signature_forgeable():
    """Why the check exists: OpenSSL accepts R = identity, s = 0 under the identity key for any message."""
    identity = Ed25519PublicKey.from_public_bytes(SMALL_ORDER["identity (order 1)"])
    forged = SMALL_ORDER["identity (order 1)"] + bytes(32)
    for message in (b"erase nothing", b"erase everything"):
        identity.verify(forged, message)  # raises InvalidSignature if the forgery did not work


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_length_refused(length):
    with pytest.raises(MalformedKeyError, match="32 bytes"):
        check_public_key_bytes(b"\x01" * length)
