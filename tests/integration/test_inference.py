"""Inference over a real server on loopback: streaming Generate and Score through the SDK, tenant isolation,
a signed erasure that takes effect on serving at once, client cancellation, and overload refused cleanly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from loravault.core.base_layout import BaseLayout
from loravault.core import BaseModel, FailedPreconditionError, InvalidArgumentError, NotFoundError
from loravault.core.errors import AbortedError, LoravaultError, ResourceExhaustedError
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.events import PurgeEvents
from loravault.server.inference import InferenceConfig, InferenceEngine
from loravault.server.main import build_erasure_pipeline
from loravault.server.vault import Vault

from .conftest import RunningServer, peft_tiny
from .erasure_kit import ADAPTER, make_world


@pytest.fixture
def inference_server(tmp_path: Path, tiny: BaseModel) -> Iterator[RunningServer]:
    """A server whose state carries the erasure pipeline and the engine, joined by one PurgeEvents."""
    data = tmp_path / "data"
    data.mkdir()
    config = ServerConfig(data_dir=data, port=0)
    vault = Vault.open(data, base_fingerprint=tiny.fingerprint)
    token = vault.credentials.ensure_admin_token(config.admin_token_path)
    events = PurgeEvents()
    engine = InferenceEngine(tiny, vault=vault, config=InferenceConfig(
        max_batch=2, max_waiting=2, max_waiting_per_tenant=2, max_seq_len=16384, max_prompt_tokens=64,
        max_new_tokens=16000, default_new_tokens=8))  # a long generation outlasts an erasure, even on a loaded machine
    events.subscribe(engine)
    engine.start()
    state = ServerState(vault=vault, base=BaseLayout.of(tiny),
                        max_chunk_bytes=MAX_CHUNK_BYTES, base_model=tiny, inference=engine, events=events,
                        erasure=build_erasure_pipeline(config, vault=vault, base=tiny, events=events))
    grpc_server, port = create_server(config, state=state)
    grpc_server.start()
    try:
        yield RunningServer(f"127.0.0.1:{port}", token, data, vault, tiny.fingerprint, state)
    finally:
        grpc_server.stop(None)
        engine.close()
        vault.close()


def _wait_until(predicate, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_generate_streams_deltas_then_done_and_score_answers(inference_server, tiny):
    world = make_world(inference_server)
    reference = peft_tiny(0)  # make_world's v2 is these weights + 0.01
    generation = world.client.generate(ADAPTER, "Hello world", max_new_tokens=10)
    deltas = list(generation)
    assert len(generation.token_ids) == 10 and 1 <= len(deltas) <= 10 and "".join(deltas) == generation.done.text
    assert (generation.done.finish_reason, generation.done.version, generation.done.completion_tokens) == (
        "length", 2, 10)
    v1 = world.client.generate(ADAPTER, "Hello world", version=1, max_new_tokens=10)
    v1.text()
    ids = tiny.tokenizer("Hello world", return_tensors="pt")
    expected = reference.generate(**ids, max_new_tokens=10, do_sample=False, pad_token_id=256)[0, ids["input_ids"].shape[1]:]
    assert v1.token_ids == expected.tolist() and v1.done.version == 1
    scored = world.client.score(ADAPTER, "Hello", " world")
    assert len(scored.logprobs) == len(scored.token_ids) == 6 and scored.version == 2
    assert abs(scored.mean_nll + sum(scored.logprobs) / 6) < 1e-5
    base = world.client.generate(None, "Hello world", max_new_tokens=4)
    base.text()
    assert base.done.version == 0


def test_another_tenants_adapter_is_not_found_and_bad_requests_are_invalid(inference_server):
    world = make_world(inference_server)
    other = inference_server.tenant("globex")
    for call in (lambda: other.generate(ADAPTER, "hi").text(), lambda: other.score(ADAPTER, "hi", " there"),
                 lambda: other.generate(ADAPTER, "hi", tenant="acme").text()):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(InvalidArgumentError, match="cap"):
        world.client.generate(ADAPTER, "hi", max_new_tokens=20_000).text()
    with pytest.raises(InvalidArgumentError, match="temperature"):
        world.client.generate(ADAPTER, "hi", temperature=-1).text()
    with pytest.raises(InvalidArgumentError, match="empty"):
        world.client.score(ADAPTER, "hi", "")


def test_erasure_cancels_the_generation_in_flight_and_the_head_serves_the_new_version(inference_server):
    world = make_world(inference_server)
    sub = world.submission()
    in_flight = iter(world.client.generate(ADAPTER, "hi", version=2, max_new_tokens=16000))
    next(in_flight)
    started = time.monotonic()
    receipt = world.client.submit_erasure(ADAPTER, envelope=sub.envelope, delta=sub.delta)
    assert time.monotonic() - started < 30, "the erasure took longer than the generation is sure to last"
    with pytest.raises(AbortedError, match="purged by an erasure"):
        for _ in in_flight:
            pass
    with pytest.raises(FailedPreconditionError, match="purged"):
        world.client.generate(ADAPTER, "hi", version=2).text()
    after = world.client.generate(ADAPTER, "hi", max_new_tokens=3)
    after.text()
    assert after.done.version == receipt.version.number == 3


def test_client_cancellation_frees_the_row(inference_server):
    world = make_world(inference_server)
    engine = inference_server.state.inference
    generation = world.client.generate(ADAPTER, "hi", max_new_tokens=16000)  # still running when cancelled
    stream = iter(generation)
    next(stream)
    assert engine.stats().running == 1
    generation.cancel()
    _wait_until(lambda: engine.stats().running == 0)
    assert engine.stats().free_rows == 2


def _drain(stream: Iterator[str]) -> None:
    """Read a stream to its end; a cancelled one ends with the error the SDK raises for it."""
    try:
        for _ in stream:
            pass
    except LoravaultError:
        pass


def test_overload_is_refused_cleanly_and_the_server_stays_responsive(inference_server):
    world = make_world(inference_server)
    engine = inference_server.state.inference
    for admitted in range(1, 5):  # two rows, two queue places, filled one at a time
        stream = iter(world.client.generate(None, "hi", max_new_tokens=100))
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
        _wait_until(lambda n=admitted: engine.stats().running + engine.stats().waiting == n)
    assert (engine.stats().running, engine.stats().waiting) == (2, 2)
    with pytest.raises(ResourceExhaustedError):
        world.client.generate(None, "hi", max_new_tokens=4).text()
    assert world.client.get_adapter(ADAPTER).head_version == 2  # other services answer meanwhile
    _wait_until(lambda: engine.stats().running == 0 and engine.stats().waiting == 0, seconds=60)
    quick = world.client.generate(None, "hi", max_new_tokens=2)
    quick.text()
    assert quick.done.completion_tokens == 2


def test_inference_without_an_engine_answers_unavailable(server, tiny):
    client = server.tenant("acme")
    with grpc.insecure_channel(server.target):
        from loravault.core.errors import UnavailableError
        with pytest.raises(UnavailableError, match="without the inference engine"):
            client.score(None, "hi", " there")


def test_cli_generate_streams_the_completion_to_stdout(inference_server, capsys):
    world = make_world(inference_server)
    expected = world.client.generate(ADAPTER, "Hello world", max_new_tokens=6)
    text = expected.text()
    from loravault.client.cli import main
    capsys.readouterr()
    code = main(["--server", inference_server.target, "--token", world.token, "generate", ADAPTER, "Hello world",
                 "--max-new-tokens", "6"])
    out, err = capsys.readouterr()
    assert code == 0 and out == text + "\n" and "length: 6 tokens, version 2" in err
    code = main(["--server", inference_server.target, "--token", world.token, "--json", "score", ADAPTER, "Hello",
                 " world"])
    assert code == 0 and len(json.loads(capsys.readouterr().out)["logprobs"]) == 6
