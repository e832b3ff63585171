"""Tokens are stored only as hashes; the first admin token file is private; keys and thresholds are checked."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from sqlalchemy import select

from loravault.core import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
)
from loravault.server.vault.tables import metadata


def _database_bytes(vault) -> bytes:
    """Every byte the database holds: SQLite's files, or on PostgreSQL every row of every table as text."""
    if vault._engine.dialect.name == "sqlite":
        folder = Path(vault._engine.url.database).parent
        return b"".join(path.read_bytes() for path in sorted(folder.glob("vault.db*")))
    with vault._engine.connect() as conn:
        return b"".join(str(list(conn.execute(select(table)))).encode() for table in metadata.sorted_tables)


def test_database_holds_the_token_hash_never_the_secret(vault):
    vault.credentials.create_tenant("acme")
    issued = vault.credentials.issue_token(role="tenant", tenant="acme", label="ci")
    stored = _database_bytes(vault)
    assert hashlib.sha256(issued.secret.encode()).hexdigest().encode() in stored  # the search can find things
    assert issued.secret.encode() not in stored
    assert issued.secret[4:].encode() not in stored


def test_secret_authenticates_until_revoked(vault):
    vault.credentials.create_tenant("acme")
    issued = vault.credentials.issue_token(role="tenant", tenant="acme")
    principal = vault.credentials.authenticate(issued.secret)
    assert (principal.role, principal.tenant, principal.token_id) == ("tenant", "acme", issued.token_id)
    vault.credentials.revoke_token(issued.token_id, tenant="acme")
    with pytest.raises(UnauthenticatedError):
        vault.credentials.authenticate(issued.secret)
    assert [t.revoked for t in vault.credentials.list_tokens(tenant="acme")] == [True]


@pytest.mark.parametrize(
    "secret",
    ["", "lvt_", "lvt_" + "A" * 43, "Bearer lvt_x", "x" * 10_000],
    ids=["empty", "prefix", "guess", "bearer", "huge"],
)
def test_unknown_secret_is_unauthenticated(vault, secret):
    with pytest.raises(UnauthenticatedError):
        vault.credentials.authenticate(secret)


def test_a_tenant_cannot_revoke_another_tenants_token(vault):
    vault.credentials.create_tenant("acme")
    vault.credentials.create_tenant("globex")
    theirs = vault.credentials.issue_token(role="tenant", tenant="globex")
    with pytest.raises(NotFoundError) as other:
        vault.credentials.revoke_token(theirs.token_id, tenant="acme")
    with pytest.raises(NotFoundError) as missing:
        vault.credentials.revoke_token("0" * 16, tenant="acme")
    assert str(other.value) == str(missing.value).replace("0" * 16, theirs.token_id)
    assert vault.credentials.authenticate(theirs.secret).tenant == "globex"


@pytest.mark.parametrize(
    ("role", "tenant"),
    [("admin", "acme"), ("tenant", None), ("root", None)],
    ids=["admin-with-tenant", "tenant-without", "unknown-role"],
)
def test_inconsistent_role_is_refused(vault, role, tenant):
    vault.credentials.create_tenant("acme")
    with pytest.raises(InvalidArgumentError):
        vault.credentials.issue_token(role=role, tenant=tenant)


def test_admin_token_file_is_written_once_with_mode_0600(vault, tmp_path):
    path = tmp_path / "admin.token"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        secret = vault.credentials.ensure_admin_token(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == secret
    assert vault.credentials.authenticate(secret).role == "admin"
    assert vault.credentials.ensure_admin_token(tmp_path / "again.token") is None
    assert not (tmp_path / "again.token").exists()


def test_admin_token_never_overwrites_an_existing_file(vault, tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("someone else's file")
    with pytest.raises(AlreadyExistsError):
        vault.credentials.ensure_admin_token(path)
    assert path.read_text() == "someone else's file"
    assert vault.credentials.list_tokens() == []  # the token row rolled back with the refusal


def _public_key() -> dict:
    return CryptoSigner.generate_ed25519().public_key.to_dict()


def test_key_id_matches_securesystemslib_and_keys_list(vault):
    vault.credentials.create_tenant("acme")
    signer = CryptoSigner.generate_ed25519()
    keyid = vault.credentials.add_key(tenant="acme", public_key=signer.public_key.to_dict())
    assert keyid == signer.public_key.keyid
    [record] = vault.credentials.list_keys(tenant="acme")
    assert (record.keyid, record.status, record.public_key) == (keyid, "active", signer.public_key.to_dict())
    with pytest.raises(AlreadyExistsError):
        vault.credentials.add_key(tenant="acme", public_key=signer.public_key.to_dict())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: {**k, "keytype": "rsa"},
        lambda k: {**k, "scheme": "ecdsa-sha2-nistp256"},
        lambda k: {**k, "keyval": {"public": k["keyval"]["public"].upper()}},
        lambda k: {**k, "keyval": {"public": k["keyval"]["public"][:62]}},
        lambda k: {**k, "keyval": {"public": k["keyval"]["public"], "private": "00" * 32}},
        lambda k: {**k, "extra": 1},
        lambda k: "not a dict",
    ],
    ids=["rsa", "other-scheme", "uppercase-hex", "short", "private-part", "extra-field", "not-a-dict"],
)
def test_malformed_public_key_is_refused(vault, mutate):
    vault.credentials.create_tenant("acme")
    with pytest.raises(InvalidArgumentError):
        vault.credentials.add_key(tenant="acme", public_key=mutate(_public_key()))
    assert vault.credentials.list_keys(tenant="acme") == []


def test_threshold_is_bounded_by_active_keys_and_protects_revocation(vault):
    vault.credentials.create_tenant("acme")
    first = vault.credentials.add_key(tenant="acme", public_key=_public_key())
    second = vault.credentials.add_key(tenant="acme", public_key=_public_key())
    assert vault.credentials.get_threshold(tenant="acme") == 1
    vault.credentials.set_threshold(tenant="acme", threshold=2)
    assert vault.credentials.get_threshold(tenant="acme") == 2
    with pytest.raises(FailedPreconditionError, match="between 1 and its 2"):
        vault.credentials.set_threshold(tenant="acme", threshold=3)
    with pytest.raises(FailedPreconditionError, match="threshold"):
        vault.credentials.revoke_key(tenant="acme", keyid=first)
    vault.credentials.set_threshold(tenant="acme", threshold=1)
    vault.credentials.revoke_key(tenant="acme", keyid=first)
    with pytest.raises(FailedPreconditionError, match="0 active key"):
        vault.credentials.revoke_key(tenant="acme", keyid=second)
    assert [k.status for k in vault.credentials.list_keys(tenant="acme")] == ["revoked", "active"]


def test_signing_policy_gives_keys_and_threshold_of_one_moment(vault):
    vault.credentials.create_tenant("acme")
    first = vault.credentials.add_key(tenant="acme", public_key=_public_key())
    second_key = _public_key()
    vault.credentials.add_key(tenant="acme", public_key=second_key)
    vault.credentials.set_threshold(tenant="acme", threshold=2)
    policy = vault.credentials.signing_policy(tenant="acme")
    assert policy.threshold == 2 and [k.keyid for k in policy.keys] == [k.keyid for k in vault.credentials.list_keys(tenant="acme")]
    vault.credentials.set_threshold(tenant="acme", threshold=1)
    vault.credentials.revoke_key(tenant="acme", keyid=first)
    policy = vault.credentials.signing_policy(tenant="acme")
    assert policy.threshold == 1 and policy.active_public_keys == [second_key]
    with pytest.raises(NotFoundError):
        vault.credentials.signing_policy(tenant="nobody")
