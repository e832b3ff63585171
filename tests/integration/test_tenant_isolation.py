"""A tenant reaches only its own resources: anything else answers NOT_FOUND, exactly as for a missing one."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from loravault.core import NotFoundError, PermissionDeniedError, UnauthenticatedError

from .conftest import peft_tiny

_PUBLIC = Ed25519PrivateKey.from_private_bytes(b"\x11" * 32).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
KEY = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": _PUBLIC.hex()}}

# Each call is made by tenant "mallory" against tenant "acme"'s resources.
FOREIGN_CALLS = {
    "get-adapter": lambda c: c.get_adapter("support", tenant="acme"),
    "list-adapters": lambda c: c.list_adapters(tenant="acme"),
    "versions": lambda c: c.versions("support", tenant="acme"),
    "download": lambda c: c.download_tensors("support", tenant="acme"),
    "upload": lambda c: c.upload_bytes("support", b"x" * 10, parent_version=1, tenant="acme"),
    "rollback": lambda c: c.rollback("support", 1, parent_version=1, tenant="acme"),
    "delete-adapter": lambda c: c.delete_adapter("support", tenant="acme"),
    "issue-token": lambda c: c.issue_token(tenant="acme"),
    "list-tokens": lambda c: c.list_tokens(tenant="acme"),
    "revoke-token": lambda c: c.revoke_token("any", tenant="acme"),
    "add-key": lambda c: c.add_key(KEY, tenant="acme"),
    "list-keys": lambda c: c.list_keys(tenant="acme"),
    "revoke-key": lambda c: c.revoke_key("ab" * 32, tenant="acme"),
    "set-threshold": lambda c: c.set_threshold(1, tenant="acme"),
}

ADMIN_CALLS = {
    "create-tenant": lambda c: c.create_tenant("eve"),
    "list-tenants": lambda c: c.list_tenants(),
    "delete-tenant": lambda c: c.delete_tenant("acme"),
    "fsck": lambda c: c.fsck(),
}


@pytest.fixture
def two_tenants(server):
    acme, mallory = server.tenant("acme"), server.tenant("mallory")
    acme.upload("support", peft_tiny())
    yield acme, mallory
    acme.close()
    mallory.close()


@pytest.mark.parametrize("call", FOREIGN_CALLS.values(), ids=FOREIGN_CALLS.keys())
def test_other_tenants_resources_answer_not_found(server, two_tenants, call):
    acme, mallory = two_tenants
    with pytest.raises(NotFoundError):
        call(mallory)
    assert [v.number for v in acme.versions("support")] == [1]
    assert acme.list_keys() == ([], 1)


def test_foreign_adapter_and_missing_adapter_look_the_same(server, two_tenants):
    acme, mallory = two_tenants
    with pytest.raises(NotFoundError) as foreign:
        mallory.get_adapter("support", tenant="acme")
    with pytest.raises(NotFoundError) as missing:
        mallory.get_adapter("support", tenant="nobody")
    assert str(foreign.value).replace("acme", "X") == str(missing.value).replace("nobody", "X")
    with pytest.raises(NotFoundError) as own_missing:
        mallory.get_adapter("support")
    assert "support" in str(own_missing.value)


@pytest.mark.parametrize("call", ADMIN_CALLS.values(), ids=ADMIN_CALLS.keys())
def test_admin_calls_need_the_admin_role(server, two_tenants, call):
    _, mallory = two_tenants
    with pytest.raises(PermissionDeniedError):
        call(mallory)
    with server.client() as admin:
        assert sorted(admin.list_tenants()) == ["acme", "mallory"]


@pytest.mark.parametrize("token", ["", "not-a-token", "0" * 64], ids=["empty", "garbage", "unknown"])
def test_calls_without_a_valid_token_are_unauthenticated(server, token):
    with server.client(token or " ") as anonymous:
        with pytest.raises(UnauthenticatedError):
            anonymous.whoami()


def test_revoked_token_stops_working(server):
    with server.client() as admin:
        admin.create_tenant("acme")
        issued = admin.issue_token(tenant="acme")
        with server.client(issued.token) as acme:
            assert acme.whoami().tenant == "acme"
            admin.revoke_token(issued.token_id, tenant="acme")
            with pytest.raises(UnauthenticatedError):
                acme.whoami()


def test_tenant_keys_are_its_own(server, two_tenants):
    acme, mallory = two_tenants
    added = acme.add_key(KEY)
    keys, threshold = acme.list_keys()
    assert [k.keyid for k in keys] == [added.keyid] and threshold == 1
    assert json.loads(keys[0].public_key_json)["keyval"]["public"] == _PUBLIC.hex()
    assert mallory.list_keys() == ([], 1)
