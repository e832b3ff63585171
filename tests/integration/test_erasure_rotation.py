"""Key rotation is signed by a threshold of the current active keys; afterwards revoked keys no longer count,
a replayed or stale rotation is refused, and a revoked key cannot come back."""

from __future__ import annotations

import time

import pytest

from loravault.core import AbortedError, AlreadyExistsError, InvalidArgumentError, UnauthenticatedError
from loravault.proto.keys import public_key_dict
from loravault.proto import sign_key_rotation

from .erasure_kit import ADAPTER, erasure_server, make_world, new_signer  # noqa: F401  (fixture)


def _rotation(world, *, keys, threshold, signers, replaces=None, now=None):
    now = int(time.time() if now is None else now)
    active = replaces or [k.keyid for k in world.client.list_keys()[0] if k.status == "active"]
    return sign_key_rotation(tenant="acme", new_keys=[public_key_dict(s) for s in keys], threshold=threshold,
                             replaces=active, issued_at=now - 10, expires_at=now + 600, signers=signers)


def test_rotation_replaces_keys_and_revoked_keys_no_longer_sign(erasure_server):
    world = make_world(erasure_server)
    a1, a2 = world.signers
    b3 = new_signer()
    envelope = _rotation(world, keys=[a2, b3], threshold=2, signers=[a1])
    keys, threshold = world.client.rotate_keys(envelope)
    assert threshold == 2
    assert {k.keyid: k.status for k in keys} == {a1.public_key.keyid: "revoked", a2.public_key.keyid: "active",
                                                 b3.public_key.keyid: "active"}
    with pytest.raises(UnauthenticatedError):
        world.client.rotate_keys(envelope)  # replay: a1 alone no longer reaches the threshold of 2
    stale = _rotation(world, keys=[a2, b3], threshold=1, signers=[a2, b3],
                      replaces=[a1.public_key.keyid, a2.public_key.keyid])
    with pytest.raises(AbortedError, match="replaces another key set"):
        world.client.rotate_keys(stale)
    stale = world.submission(signers=[a1, a2])  # a1 is revoked: 1 of 2
    with pytest.raises(UnauthenticatedError, match="1 of 2"):
        world.client.submit_erasure(ADAPTER, envelope=stale.envelope, delta=stale.delta)
    fresh = world.submission(signers=[a2, b3])
    assert world.client.submit_erasure(ADAPTER, envelope=fresh.envelope, delta=fresh.delta).version.number == 3


def test_rotation_needs_a_threshold_of_current_keys(erasure_server):
    world = make_world(erasure_server)
    a1, a2 = world.signers
    with pytest.raises(UnauthenticatedError):
        world.client.rotate_keys(_rotation(world, keys=[new_signer()], threshold=1, signers=[new_signer()]))
    world.client.set_threshold(2, signers=[a1])
    with pytest.raises(UnauthenticatedError):
        world.client.rotate_keys(_rotation(world, keys=[a1], threshold=1, signers=[a1]))
    assert world.client.list_keys()[1] == 2


def test_revoked_key_cannot_return_and_expired_rotation_is_refused(erasure_server):
    world = make_world(erasure_server)
    a1, a2 = world.signers
    world.client.rotate_keys(_rotation(world, keys=[a2], threshold=1, signers=[a1]))
    with pytest.raises(AlreadyExistsError):
        world.client.rotate_keys(_rotation(world, keys=[a1, a2], threshold=1, signers=[a2]))
    with pytest.raises(InvalidArgumentError, match="valid in"):
        world.client.rotate_keys(_rotation(world, keys=[a2, new_signer()], threshold=1, signers=[a2],
                                           now=time.time() - 7200))
    keys, threshold = world.client.list_keys()
    assert [k.keyid for k in keys if k.status == "active"] == [a2.public_key.keyid] and threshold == 1
