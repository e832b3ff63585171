"""A stolen tenant token cannot change what the tenant's signatures mean, and a weak key cannot forge them.

- The first key needs only the token (trust on first use); after that, AddKey, RevokeKey and SetThreshold with a
  token alone are PERMISSION_DENIED with state unchanged, and the same changes go through as signed rotations.
- The review's attack (keys j1, j2 at threshold 2; with the token: AddKey(jz), SetThreshold(1), RevokeKey(j1),
  RevokeKey(j2), then an erasure signed by jz alone) is refused at its first step.
- An admin can reset a tenant's keys (recovery), and every such change is an audit entry that verifies.
- The identity key is refused at AddKey, and the erasure it would forge is refused even if the key was already
  in the database.
"""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from securesystemslib.signer import Signature, Signer, SSlibKey
from sqlalchemy import insert, select

from loravault.core import InvalidArgumentError, PermissionDeniedError, UnauthenticatedError
from loravault.proto.keys import key_id, public_key_dict
from loravault.server.audit import AuditLog, check_log, read_data_folder
from loravault.server.audit.body import KEY_CHANGE_KIND
from loravault.server.vault.clock import utc_now
from loravault.server.vault.tables import keys as keys_table
from loravault.server.vault.tables import tenants as tenants_table

from .erasure_kit import ADAPTER, TENANT, erasure_server, make_world, messages, new_signer, vault_state  # noqa: F401

IDENTITY = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "01" + "00" * 31}}


class IdentityForger(Signer):
    """Signs anything with R = identity, s = 0: valid under the identity public key (see test_weak_keys)."""

    public_key = SSlibKey(key_id(IDENTITY), "ed25519", "ed25519", {"public": "01" + "00" * 31})

    def sign(self, payload: bytes) -> Signature:
        return Signature(self.public_key.keyid, (b"\x01" + bytes(63)).hex())

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri, public_key, secrets_handler=None):  # pragma: no cover
        raise NotImplementedError


def _key_state(world) -> tuple:
    keys, threshold = world.client.list_keys()
    return tuple((k.keyid, k.status) for k in keys), threshold


def test_token_alone_cannot_undo_the_threshold(erasure_server):
    world = make_world(erasure_server)
    j1, j2 = world.signers
    world.client.set_threshold(2, signers=[j1])
    before, jz = (_key_state(world), vault_state(erasure_server)), new_signer()
    attack = [
        ("add-key", lambda: world.client.add_key(public_key_dict(jz))),
        ("set-threshold", lambda: world.client.set_threshold(1)),
        ("revoke-j1", lambda: world.client.revoke_key(j1.public_key.keyid)),
        ("revoke-j2", lambda: world.client.revoke_key(j2.public_key.keyid)),
    ]
    for step, call in attack:
        with pytest.raises(PermissionDeniedError, match="signed by a threshold"):
            call()
        assert (_key_state(world), vault_state(erasure_server)) == before, step
    forged_by_jz = world.submission(signers=[jz])
    with pytest.raises(UnauthenticatedError):
        world.client.submit_erasure(ADAPTER, envelope=forged_by_jz.envelope, delta=forged_by_jz.delta)
    assert vault_state(erasure_server) == before[1]


def test_signed_changes_replace_the_token_path(erasure_server):
    world = make_world(erasure_server)
    j1, j2 = world.signers
    j3 = new_signer()
    assert world.client.add_key(public_key_dict(j3), signers=[j1]).status == "active"
    assert world.client.set_threshold(2, signers=[j1]) == 2
    with pytest.raises(UnauthenticatedError):  # one key no longer reaches the threshold
        world.client.set_threshold(1, signers=[j2])
    revoked = world.client.revoke_key(j1.public_key.keyid, signers=[j2, j3])  # the others revoke a lost key
    assert revoked.status == "revoked"
    assert _key_state(world) == (((j1.public_key.keyid, "revoked"), (j2.public_key.keyid, "active"),
                                  (j3.public_key.keyid, "active")), 2)


def test_first_key_is_trust_on_first_use(erasure_server):
    client = erasure_server.tenant("fresh")
    first, second = new_signer(), new_signer()
    assert client.add_key(public_key_dict(first)).keyid == first.public_key.keyid
    with pytest.raises(PermissionDeniedError):
        client.add_key(public_key_dict(second))
    assert [k.keyid for k in client.list_keys()[0]] == [first.public_key.keyid]


def test_admin_reset_is_allowed_and_audited(erasure_server, database_url):
    world = make_world(erasure_server)
    j1, j2 = world.signers
    replacement = new_signer()
    with erasure_server.client() as admin:
        admin.add_key(public_key_dict(replacement), tenant=TENANT)
        admin.revoke_key(j1.public_key.keyid, tenant=TENANT)
        admin.revoke_key(j2.public_key.keyid, tenant=TENANT)
        admin.set_threshold(1, tenant=TENANT)
    assert _key_state(world)[0][-1] == (replacement.public_key.keyid, "active")
    bodies = [json.loads(e.body) for e in AuditLog(erasure_server.vault, signer=None).entries()]
    changes = [b for b in bodies if b["kind"] == KEY_CHANGE_KIND]
    assert [(c["action"], c["key_id"]) for c in changes] == [
        ("add-key", replacement.public_key.keyid), ("revoke-key", j1.public_key.keyid),
        ("revoke-key", j2.public_key.keyid), ("set-threshold", "")]
    assert changes[-1]["active_key_ids"] == [replacement.public_key.keyid] and changes[-1]["threshold"] == 1
    snapshot = read_data_folder(erasure_server.data_dir, database_url=database_url)
    report = check_log(snapshot.entries, receipts=snapshot.receipts, checkpoints=snapshot.checkpoints,
                       server_key=snapshot.server_key)
    assert report and report.entries == len(bodies)


def test_identity_key_refused_at_add_key(erasure_server):
    client = erasure_server.tenant("fresh")
    before = vault_state(erasure_server)
    with pytest.raises(InvalidArgumentError, match="weak Ed25519 key"):
        client.add_key(IDENTITY)
    assert client.list_keys() == ([], 1) and vault_state(erasure_server) == before


def test_forged_erasure_under_a_planted_identity_key_is_refused(erasure_server):
    """A weak key that reached the database before this check (planted here by SQL) still counts for nothing."""
    world = make_world(erasure_server)
    with erasure_server.vault.write_transaction() as conn:
        tenant_id = conn.scalar(select(tenants_table.c.id).where(tenants_table.c.name == TENANT))
        conn.execute(insert(keys_table).values(tenant_id=tenant_id, keyid=key_id(IDENTITY),
                                               public_key=json.dumps(IDENTITY), status="active",
                                               created_at=utc_now()))
    before = vault_state(erasure_server)
    forged = world.submission(signers=[IdentityForger()])
    with pytest.raises(grpc.RpcError) as refused:
        world.raw_submit(messages(forged))
    assert refused.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED)
    assert "weak Ed25519 key" in refused.value.details()
    assert vault_state(erasure_server) == before
    assert base64.b64decode(json.loads(forged.envelope)["signatures"][0]["sig"])[:1] == b"\x01"
