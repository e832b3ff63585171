"""The adapter cache and invalidation: keyed by blob hash (identical bytes share an entry, a new version never
hits a stale one), an LRU within its byte budget, and purges (erasure, deletion) taking effect at once."""

from __future__ import annotations

import pytest
import torch
from inference_kit import TinyAdapter, collect, peft_greedy, tiny_adapter, upload

from loravault.core import encode_tensors, sha256_hex
from loravault.core.errors import AbortedError, FailedPreconditionError, NotFoundError
from loravault.server.events import PurgeEvents
from loravault.server.inference import Delta, SamplingParams

# past end-of-sequence, so a generation is still running when the test purges its version (tiny: ~1 s)
LONG = SamplingParams(max_new_tokens=256, ignore_eos=True)
LONG_CAPS = {"max_new_tokens": 256, "max_seq_len": 320}


def _erase(vault, *, tenant: str, adapter: str, replacement: TinyAdapter) -> int:
    """Commit an erasure straight through the vault (the signed protocol is tested in integration)."""
    head = vault.adapters.get_adapter(tenant=tenant, name=adapter).head_version
    data = encode_tensors(replacement.tensors)
    staged = vault.adapters.stage_blob(data, expected_sha256=sha256_hex(data))
    return vault.adapters.erasure_commit(tenant=tenant, adapter=adapter, parent_version=head, blob=staged,
                                manifest_hash="ab" * 32).number


def test_erasure_cancels_generations_on_purged_versions_and_serves_the_new_head(tiny, vault, make_engine):
    vault.credentials.create_tenant("acme")
    old, new = tiny_adapter(1), tiny_adapter(2)
    upload(vault, tenant="acme", name="a", adapter=old)
    engine = make_engine(**LONG_CAPS)
    events = PurgeEvents()
    events.subscribe(engine)
    in_flight = engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=LONG).events(timeout=30)
    assert isinstance(next(in_flight), Delta)
    floor = _erase(vault, tenant="acme", adapter="a", replacement=new)
    events.adapter_purged(tenant="acme", adapter="a", floor=floor)
    with pytest.raises(AbortedError, match="purged by an erasure"):
        for _ in in_flight:
            pass
    with pytest.raises(FailedPreconditionError, match="purged"):
        engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=LONG)
    tokens, done = collect(engine.generate(tenant="acme", adapter="a", version=0, prompt="Hello world",
                                           params=SamplingParams(max_new_tokens=16)))
    assert done.version == floor == 2
    assert tokens == peft_greedy(new.peft, tiny.tokenizer, "Hello world", 16)
    assert ("acme", "a", 1) not in engine.cache.owners()


def test_identical_bytes_share_one_cache_entry_and_a_new_version_gets_its_own(vault, make_engine):
    shared = tiny_adapter(5)
    for tenant in ("t1", "t2"):
        vault.credentials.create_tenant(tenant)
        upload(vault, tenant=tenant, name="a", adapter=shared)
    engine = make_engine()
    for tenant in ("t1", "t2"):
        collect(engine.generate(tenant=tenant, adapter="a", version=0, prompt="hi",
                                params=SamplingParams(max_new_tokens=2)))
    assert len(engine.cache) == 1 and engine.cache.owners() == {("t1", "a", 1), ("t2", "a", 1)}
    upload(vault, tenant="t1", name="a", adapter=tiny_adapter(6), create=False)
    assert collect(engine.generate(tenant="t1", adapter="a", version=0, prompt="hi",
                                   params=SamplingParams(max_new_tokens=2)))[1].version == 2
    assert len(engine.cache) == 2


def test_deleting_a_tenant_drops_its_cache_entries_and_cancels_its_requests(vault, make_engine):
    shared, own = tiny_adapter(5), tiny_adapter(7)
    for tenant in ("t1", "t2"):
        vault.credentials.create_tenant(tenant)
        upload(vault, tenant=tenant, name="shared", adapter=shared)
    upload(vault, tenant="t1", name="own", adapter=own)
    engine = make_engine(**LONG_CAPS)
    for tenant, name in (("t1", "shared"), ("t2", "shared"), ("t1", "own")):
        collect(engine.generate(tenant=tenant, adapter=name, version=0, prompt="hi",
                                params=SamplingParams(max_new_tokens=2)))
    running = engine.generate(tenant="t1", adapter="own", version=0, prompt="hi", params=LONG).events(timeout=30)
    assert isinstance(next(running), Delta)
    assert len(engine.cache) == 2
    vault.delete_tenant("t1")
    engine.tenant_deleted(tenant="t1")
    with pytest.raises(NotFoundError, match="deleted"):
        for _ in running:
            pass
    assert engine.cache.owners() == {("t2", "shared", 1)} and len(engine.cache) == 1
    assert not engine.cache.contains(sha256_hex(encode_tensors(own.tensors)))


def test_cache_evicts_least_recently_used_past_its_byte_budget(vault, make_engine):
    vault.credentials.create_tenant("acme")
    adapters = [tiny_adapter(30 + i) for i in range(3)]
    for i, adapter in enumerate(adapters):
        upload(vault, tenant="acme", name=f"a{i}", adapter=adapter)
    one = sum(t.numel() * 4 for t in adapters[0].tensors.values())  # float32 bytes of one adapter
    engine = make_engine(cache_bytes=2 * one)
    for name in ("a0", "a1", "a0", "a2"):  # a1 is then the least recently used
        collect(engine.generate(tenant="acme", adapter=name, version=0, prompt="hi",
                                params=SamplingParams(max_new_tokens=1)))
    assert engine.cache.nbytes <= 2 * one
    assert {owner[1] for owner in engine.cache.owners()} == {"a0", "a2"}


def test_rollback_serves_the_rolled_back_bytes(tiny, vault, make_engine):
    vault.credentials.create_tenant("acme")
    first, second = tiny_adapter(40), tiny_adapter(41)
    upload(vault, tenant="acme", name="a", adapter=first)
    upload(vault, tenant="acme", name="a", adapter=second, create=False)
    engine = make_engine()
    assert collect(engine.generate(tenant="acme", adapter="a", version=0, prompt="Hello world",
                                   params=SamplingParams(max_new_tokens=12)))[0] == peft_greedy(
        second.peft, tiny.tokenizer, "Hello world", 12)
    vault.adapters.rollback(tenant="acme", adapter="a", to_version=1, parent_version=2)
    tokens, done = collect(engine.generate(tenant="acme", adapter="a", version=0, prompt="Hello world",
                                           params=SamplingParams(max_new_tokens=12)))
    assert done.version == 3
    assert tokens == peft_greedy(first.peft, tiny.tokenizer, "Hello world", 12)


def test_adapter_weights_that_do_not_fit_the_base_are_refused(vault, make_engine):
    from loravault.core import AdapterSchema, TensorSpec
    vault.credentials.create_tenant("acme")
    schema = AdapterSchema(rank=2, alpha=4.0, target_modules=("q_proj",),
                           tensors=(TensorSpec("m.layers.0.self_attn.q_proj.lora_A.weight", (2, 32)),
                                    TensorSpec("m.layers.0.self_attn.q_proj.lora_B.weight", (64, 2))),
                           dtype="float32", base_fingerprint=vault.adapters.base_fingerprint)
    tensors = {spec.name: torch.ones(spec.shape) for spec in schema.tensors}
    upload(vault, tenant="acme", name="wrong", adapter=TinyAdapter(schema, tensors, None))
    engine = make_engine(**LONG_CAPS)
    with pytest.raises(FailedPreconditionError, match="do not fit"):
        engine.generate(tenant="acme", adapter="wrong", version=0, prompt="hi", params=LONG)
    assert len(engine.cache) == 0
