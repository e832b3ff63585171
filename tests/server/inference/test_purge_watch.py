"""Another replica's purge (a second Vault on the same database, committing with no event in this process)
cancels this replica's generations in flight through the purge watch; idle, the watch reads nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from inference_kit import tiny_adapter, upload

from loravault.core import encode_tensors
from loravault.core.errors import AbortedError, NotFoundError
from loravault.server.events import PurgeEvents
from loravault.server.inference import Delta, InferenceConfig, InferenceEngine, SamplingParams
from loravault.server.inference.purge_watch import PurgeWatch
from loravault.server.vault import Vault

RUNS_LONG = SamplingParams(max_new_tokens=256, ignore_eos=True)


@pytest.fixture
def replicas(tmp_path, tiny, database_url) -> Iterator[tuple[Vault, Vault]]:
    """Two vaults on one metadata database, each with its own data folder, as two server replicas have."""
    url = database_url or f"sqlite:///{tmp_path / 'shared.db'}"
    with Vault.open(tmp_path / "here", base_fingerprint=tiny.fingerprint, database_url=url) as here, \
            Vault.open(tmp_path / "there", base_fingerprint=tiny.fingerprint, database_url=url) as there:
        yield here, there


@pytest.fixture
def serving(tiny, replicas) -> Iterator[tuple[InferenceEngine, PurgeEvents, Vault, Vault]]:
    here, there = replicas
    here.credentials.create_tenant("acme")
    upload(here, tenant="acme", name="a", adapter=tiny_adapter(1))
    engine = InferenceEngine(tiny, vault=here, config=InferenceConfig(max_batch=4, max_seq_len=320,
                                                                       max_prompt_tokens=32, max_new_tokens=256))
    events = PurgeEvents()
    events.subscribe(engine)
    yield engine, events, here, there
    engine.close()


def erase_elsewhere(there: Vault) -> int:
    """The other replica commits an erasure of acme/a: the floor rises in the shared database, nothing is
    announced in this process."""
    head = there.adapters.get_adapter(tenant="acme", name="a").head_version
    data = encode_tensors(tiny_adapter(2).tensors)
    with there.adapters.new_blob_writer(max_bytes=len(data)) as writer:
        writer.write(data)
        staged = writer.finish()
    return there.adapters.erasure_commit(tenant="acme", adapter="a", parent_version=head, blob=staged,
                                         manifest_hash="ab" * 32).number


class GatedSteps:
    """The engine's step model, held after its second step until the test lets it go: the generation is
    certainly still running while the other replica erases and the watch polls."""

    def __init__(self, step) -> None:
        self._step, self.calls = step, 0
        self.held, self.go = threading.Event(), threading.Event()

    def forward(self, batch):
        self.calls += 1
        if self.calls == 3:
            self.held.set()
            assert self.go.wait(timeout=30), "the test never released the engine"
        return self._step.forward(batch)


@pytest.mark.timeout(120)
def test_an_erasure_on_another_replica_cancels_a_generation_in_flight_here(serving, monkeypatch):
    engine, events, here, there = serving
    gate = GatedSteps(engine._step)
    monkeypatch.setattr(engine, "_step", gate)
    engine.start()
    stream = engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=RUNS_LONG).events(timeout=30)
    assert isinstance(next(stream), Delta)
    assert gate.held.wait(timeout=30)
    floor = erase_elsewhere(there)
    assert PurgeWatch(engine, here.adapters, events, interval_s=60).poll() == 1
    gate.go.set()
    with pytest.raises(AbortedError, match=f"purged by an erasure committed at v{floor}"):
        for _ in stream:
            pass


def test_the_watch_thread_polls_on_its_interval_and_stops(serving):
    engine, events, here, _ = serving
    polled = threading.Event()

    class Floors:
        def floors(self, keys):
            polled.set()
            return here.adapters.floors(keys)

    engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=RUNS_LONG)  # waits: engine not started
    watch = PurgeWatch(engine, Floors(), events, interval_s=0.01)
    watch.start()
    assert polled.wait(timeout=10)
    watch.close()


def test_a_deletion_on_another_replica_ends_waiting_requests_here(serving):
    engine, events, here, there = serving  # the engine is not started: the request stays queued
    handle = engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=RUNS_LONG)
    watch = PurgeWatch(engine, here.adapters, events, interval_s=60)
    assert watch.poll() == 0  # nothing happened yet
    there.adapters.delete_adapter(tenant="acme", name="a")
    assert watch.poll() == 1
    with pytest.raises(NotFoundError, match="was deleted"):
        next(handle.events(timeout=5))
    assert engine.in_flight() == set()


class CountingFloors:
    def __init__(self, adapters) -> None:
        self.adapters, self.queries = adapters, 0

    def floors(self, keys):
        self.queries += 1
        return self.adapters.floors(keys)


def test_the_watch_reads_nothing_while_idle_and_one_query_while_busy(serving):
    engine, events, here, _ = serving
    counting = CountingFloors(here.adapters)
    watch = PurgeWatch(engine, counting, events, interval_s=60)
    assert watch.poll() == 0 and counting.queries == 0
    for _ in range(3):
        engine.generate(tenant="acme", adapter="a", version=1, prompt="hi", params=RUNS_LONG)
    assert watch.poll() == 0 and counting.queries == 1
