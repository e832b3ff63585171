"""Adapters through a real server: PEFT round trips, versions, rollback, CAS, base binding."""

import threading

import pytest
import torch
from peft import PeftModel

from loravault.core import (
    AbortedError,
    FailedPreconditionError,
    adapter_from_peft_model,
    encode_tensors,
    load_base,
)

from .conftest import big_schema, big_tensors, peft_tiny


def test_peft_adapter_round_trips_with_identical_logits(server, tmp_path):
    model = peft_tiny(seed=1)
    with server.tenant("acme") as acme:
        version = acme.upload("support", model)
        assert version.number == 1 and version.kind == "upload"
        acme.download("support", tmp_path / "export")
    reloaded = PeftModel.from_pretrained(load_base("tiny").model, tmp_path / "export").eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_load_peft_gives_the_uploaded_function(server):
    model = peft_tiny(seed=2)
    with server.tenant("acme") as acme:
        acme.upload("support", model)
        loaded = acme.load_peft("support", load_base("tiny").model)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_versions_grow_and_rollback_points_to_old_bytes(server):
    with server.tenant("acme") as acme:
        first = acme.upload("support", peft_tiny(seed=1))
        second = acme.upload("support", peft_tiny(seed=2))
        rolled = acme.rollback("support", 1)
        versions = acme.versions("support")
        _, head, _ = acme.download_tensors("support")
    assert [v.number for v in versions] == [1, 2, 3]
    assert [v.kind for v in versions] == ["upload", "upload", "rollback"]
    assert second.blob_sha256 != first.blob_sha256
    assert rolled.blob_sha256 == first.blob_sha256 and rolled.parent == 2
    assert head.number == 3


def test_adapter_for_another_base_is_refused(server):
    model = peft_tiny()
    schema, _ = adapter_from_peft_model(model, base_fingerprint="0" * 64)
    with server.tenant("acme") as acme:
        with pytest.raises(FailedPreconditionError, match="bound to base"):
            acme.create_adapter("other-base", schema)
        assert acme.list_adapters() == []


def test_stale_parent_is_aborted(server):
    with server.tenant("acme") as acme:
        acme.upload("support", peft_tiny(seed=1))
        _, _, tensors = acme.download_tensors("support")
        with pytest.raises(AbortedError):
            acme.upload_tensors("support", tensors, parent_version=0)
        assert acme.get_adapter("support").head_version == 1


def test_concurrent_uploads_on_one_parent_have_exactly_one_winner(server):
    schema = big_schema(server.fingerprint, rank=32)
    payloads = [encode_tensors(big_tensors(schema, seed=i)) for i in range(6)]
    outcomes: list[object] = []
    with server.tenant("acme") as acme:
        acme.create_adapter("shared", schema)
        barrier = threading.Barrier(len(payloads))

        def upload(data: bytes) -> None:
            barrier.wait()
            try:
                outcomes.append(acme.upload_bytes("shared", data, parent_version=0))
            except AbortedError as error:
                outcomes.append(error)

        threads = [threading.Thread(target=upload, args=(data,)) for data in payloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        versions = acme.versions("shared")
    winners = [o for o in outcomes if not isinstance(o, AbortedError)]
    assert len(outcomes) == len(payloads)
    assert len(winners) == 1
    assert [v.number for v in versions] == [1]
    assert versions[0].blob_sha256 == winners[0].blob_sha256


def test_large_adapter_streams_in_chunks_and_round_trips(server):
    schema = big_schema(server.fingerprint)
    tensors = big_tensors(schema)
    with server.tenant("acme") as acme:
        acme.create_adapter("big", schema)
        version = acme.upload_tensors("big", tensors)
        _, _, back = acme.download_tensors("big")
    assert version.size > 4 * (1 << 20)
    assert all(torch.equal(back[name], tensors[name]) for name in tensors)


def test_versions_page_through_after_and_limit(server):
    with server.tenant("acme") as acme:
        acme.upload("support", peft_tiny(seed=1))
        acme.upload("support", peft_tiny(seed=2))
        for target in (1, 2, 1):
            acme.rollback("support", target)
        page = acme.versions("support", after=2, limit=2)
        rest = acme.versions("support", after=4)
    assert [v.number for v in page] == [3, 4]
    assert [v.number for v in rest] == [5]
