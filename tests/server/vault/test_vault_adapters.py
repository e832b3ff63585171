"""Adapters: names, binding to the base, tenant isolation, and deletion that keeps shared blobs."""

from __future__ import annotations

import pytest
from vault_testkit import OTHER_FINGERPRINT, adapter_bytes, blob_exists, make_schema, upload

from loravault.core import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError


def test_created_adapter_round_trips_its_schema(acme):
    record = acme.adapters.get_adapter(tenant="acme", name="support")
    assert (record.tenant, record.name, record.schema, record.head_version, record.floor) == (
        "acme", "support", make_schema(), 0, 0,
    )
    assert [a.name for a in acme.adapters.list_adapters(tenant="acme")] == ["support"]


def test_adapter_for_another_base_is_refused(acme):
    with pytest.raises(FailedPreconditionError, match="bound to base cdcdcdcdcdcd"):
        acme.adapters.create_adapter(tenant="acme", name="foreign", schema=make_schema(OTHER_FINGERPRINT))
    assert [a.name for a in acme.adapters.list_adapters(tenant="acme")] == ["support"]


def test_duplicate_adapter_and_tenant_names_are_refused(acme):
    with pytest.raises(AlreadyExistsError, match="acme/support"):
        acme.adapters.create_adapter(tenant="acme", name="support", schema=make_schema())
    with pytest.raises(AlreadyExistsError, match="tenant acme"):
        acme.credentials.create_tenant("acme")


HOSTILE_NAMES = [
    ("", "empty"),
    ("a" * 65, "too-long"),
    (".hidden", "leading-dot"),
    ("-flag", "leading-dash"),
    ("_under", "leading-underscore"),
    ("../etc", "path-traversal"),
    ("a/b", "slash"),
    ("a\\b", "backslash"),
    ("name\n", "trailing-newline"),
    ("na me", "space"),
    ("a\x00b", "nul"),
    ("café", "non-ascii"),
    ("１２３", "fullwidth-digits"),
    ("a;DROP TABLE tenants", "sql"),
    (None, "none"),
    (42, "int"),
]


@pytest.mark.parametrize("name", [n for n, _ in HOSTILE_NAMES], ids=[i for _, i in HOSTILE_NAMES])
def test_hostile_names_are_refused_everywhere(acme, name):
    with pytest.raises(InvalidArgumentError, match="name"):
        acme.credentials.create_tenant(name)
    with pytest.raises(InvalidArgumentError, match="name"):
        acme.adapters.create_adapter(tenant="acme", name=name, schema=make_schema())
    with pytest.raises(InvalidArgumentError, match="name"):
        acme.adapters.get_adapter(tenant=name, name="support")
    assert [t.name for t in acme.credentials.list_tenants()] == ["acme"]


@pytest.mark.parametrize(
    "name", ["a", "A" * 64, "v1.2-beta_3", "0day"], ids=["one-char", "64-chars", "punctuated", "digit-first"]
)
def test_valid_names_are_accepted(acme, name):
    assert acme.adapters.create_adapter(tenant="acme", name=name, schema=make_schema()).name == name


def test_another_tenants_adapter_looks_exactly_like_a_missing_one(acme):
    acme.credentials.create_tenant("globex")
    acme.adapters.create_adapter(tenant="globex", name="secret", schema=make_schema())
    upload(acme, tenant="globex", adapter="secret", data=adapter_bytes(1), parent=0)

    def message(call, **kwargs) -> tuple[type, str]:
        with pytest.raises(NotFoundError) as caught:
            call(**kwargs)
        return type(caught.value), str(caught.value)

    for call, kwargs in [
        (acme.adapters.get_adapter, {"tenant": "acme", "name": "{}"}),
        (acme.adapters.list_versions, {"tenant": "acme", "adapter": "{}"}),
        (acme.adapters.get_version, {"tenant": "acme", "adapter": "{}"}),
        (acme.adapters.read_version_blob, {"tenant": "acme", "adapter": "{}", "version": 1}),
        (acme.adapters.delete_adapter, {"tenant": "acme", "name": "{}"}),
    ]:
        theirs = message(call, **{k: v.format("secret") if isinstance(v, str) else v for k, v in kwargs.items()})
        missing = message(call, **{k: v.format("nothing") if isinstance(v, str) else v for k, v in kwargs.items()})
        assert theirs == (missing[0], missing[1].replace("nothing", "secret"))
    assert acme.adapters.get_adapter(tenant="globex", name="secret").head_version == 1


def test_delete_tenant_purges_its_blobs_but_keeps_a_blob_another_tenant_shares(acme):
    acme.credentials.create_tenant("globex")
    acme.adapters.create_adapter(tenant="globex", name="copy", schema=make_schema())
    shared = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    own = upload(acme, tenant="acme", adapter="support", data=adapter_bytes(2), parent=1)
    upload(acme, tenant="globex", adapter="copy", data=adapter_bytes(1), parent=0)
    acme.credentials.issue_token(role="tenant", tenant="acme")

    result = acme.delete_tenant("acme")

    assert (result.deleted_adapters, result.deleted_versions, result.purged_blobs) == (1, 2, 1)
    assert not blob_exists(acme, own.blob_sha256)
    assert acme.adapters.read_version_blob(tenant="globex", adapter="copy") == adapter_bytes(1)
    assert shared.blob_sha256 == acme.adapters.get_version(tenant="globex", adapter="copy").blob_sha256
    assert [t.name for t in acme.credentials.list_tenants()] == ["globex"]
    assert acme.credentials.list_tokens() == []
    assert acme.adapters.fsck().clean
    with pytest.raises(NotFoundError):
        acme.adapters.get_adapter(tenant="acme", name="support")


def test_delete_adapter_removes_versions_and_unshared_blobs(acme):
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=0)
    upload(acme, tenant="acme", adapter="support", data=adapter_bytes(1), parent=1)
    assert acme.adapters.delete_adapter(tenant="acme", name="support") == 1
    assert acme.adapters.list_adapters(tenant="acme") == []
    assert acme._store.stored_digests() == []
