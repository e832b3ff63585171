"""A valid signed erasure commits: new head of kind erasure, floor raised, older versions purged, a receipt
the client can verify with the server's key, an audit entry, and the same request again answers the same."""

from __future__ import annotations

import json

import pytest

from loravault.core import FailedPreconditionError, NotFoundError
from loravault.proto.receipt import verify_receipt
from loravault.server.audit import AuditLog, verify_chain

from .erasure_kit import ADAPTER, erasure_server, make_world, vault_state  # noqa: F401  (fixture)


def test_valid_erasure_commits_purges_and_returns_a_verifiable_receipt(erasure_server):
    world = make_world(erasure_server)
    sub = world.submission()
    answer = world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)

    receipt = verify_receipt(answer.envelope, server_key=world.client.server_key(), manifest=sub.manifest)
    assert (answer.version.number, answer.version.kind, answer.log_index) == (3, "erasure", 0)
    assert answer.version.blob_sha256 == sub.manifest.result_hash == receipt.new_adapter_hash
    adapter = world.client.get_adapter(ADAPTER)
    assert (adapter.head_version, adapter.erasure_floor) == (3, 3)
    assert [v.purged for v in world.client.versions(ADAPTER)] == [True, True, False]
    with pytest.raises(FailedPreconditionError, match="purged"):
        world.client.download_tensors(ADAPTER, version=2)
    _, version, _ = world.client.download_tensors(ADAPTER)
    assert version.blob_sha256 == sub.manifest.result_hash

    entries = list(AuditLog(erasure_server.vault, signer=None).entries())
    assert verify_chain(entries).size == 1 and receipt.entry_hash == entries[0].entry_hash
    body = json.loads(entries[0].body)
    assert body["request_id"] == sub.manifest.request_id and body["forget_count"] == 2
    assert "sample-1" not in entries[0].body.decode()


def test_replayed_request_returns_the_stored_receipt_and_changes_nothing(erasure_server):
    world = make_world(erasure_server)
    sub = world.submission()
    first = world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
    before = vault_state(erasure_server)
    again = world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
    assert again == first
    assert vault_state(erasure_server) == before
    assert world.client.get_receipt(ADAPTER, sub.manifest.request_id) == first


def test_get_receipt_is_not_found_for_unknown_ids_and_other_tenants(erasure_server):
    world = make_world(erasure_server)
    sub = world.submission()
    world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
    with pytest.raises(NotFoundError):
        world.client.get_receipt(ADAPTER, "0" * 32)
    other = erasure_server.tenant("other")
    with pytest.raises(NotFoundError):
        other.get_receipt(ADAPTER, sub.manifest.request_id, tenant="acme")


def test_admin_streams_the_audit_log_and_a_tenant_may_not(erasure_server):
    world = make_world(erasure_server)
    for _ in range(2):
        sub = world.submission()
        world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
    with erasure_server.client() as admin:
        entries = list(admin.stream_audit_log())
        assert [e.index for e in entries] == [0, 1]
        assert entries[1].previous_hash == entries[0].entry_hash
        assert [e.index for e in admin.stream_audit_log(from_index=1)] == [1]
    from loravault.core import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        list(world.client.stream_audit_log())
