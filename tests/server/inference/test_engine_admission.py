"""Admission control and lifecycle: a full queue refuses cleanly and the engine keeps serving, cancellation
frees the row within a step, deadlines are honoured, a flooding tenant does not starve another, and bad
requests are refused before they queue."""

from __future__ import annotations

import time

import pytest
from inference_kit import collect, tiny_adapter, upload

from loravault.core.errors import (AbortedError, DeadlineExceededError, InvalidArgumentError, NotFoundError,
                                   ResourceExhaustedError)
from loravault.server.inference import Delta, SamplingParams

LONG = SamplingParams(max_new_tokens=60)


def _wait_until(predicate, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_full_queue_is_refused_and_the_engine_stays_responsive(vault, make_engine):
    engine = make_engine(max_batch=2, max_waiting=2, max_waiting_per_tenant=2, max_seq_len=4096, max_new_tokens=4000)
    endless = SamplingParams(max_new_tokens=4000)  # still running when the queue is checked, however fast the machine
    handles = [engine.generate(tenant="a", adapter=None, version=0, prompt="hi", params=endless) for _ in range(2)]
    _wait_until(lambda: engine.stats().running == 2)
    handles += [engine.generate(tenant="a", adapter=None, version=0, prompt="hi", params=endless) for _ in range(2)]
    with pytest.raises(ResourceExhaustedError, match="full|waiting"):
        engine.generate(tenant="b", adapter=None, version=0, prompt="hi", params=LONG)
    assert (engine.stats().running, engine.stats().waiting) == (2, 2)
    for handle in handles:
        handle.cancel()
    _wait_until(lambda: engine.stats().running == 0 and engine.stats().waiting == 0)
    quick = engine.generate(tenant="b", adapter=None, version=0, prompt="hi", params=SamplingParams(max_new_tokens=3))
    assert collect(quick)[1].completion_tokens == 3


def test_cancel_frees_the_row_within_one_step(vault, make_engine):
    engine = make_engine(max_batch=2, max_seq_len=4096, max_new_tokens=4000)
    handle = engine.generate(tenant="a", adapter=None, version=0, prompt="hi",
                             params=SamplingParams(max_new_tokens=4000))
    events = handle.events(timeout=30)
    assert isinstance(next(events), Delta)
    steps = engine.stats().steps
    handle.cancel()
    _wait_until(lambda: engine.stats().running == 0)
    assert engine.stats().steps <= steps + 2 and engine.stats().free_rows == 2
    with pytest.raises(AbortedError, match="cancelled"):
        for _ in events:
            pass


def test_deadline_stops_a_waiting_and_a_running_request(vault, make_engine):
    engine = make_engine(max_batch=1, max_seq_len=4096, max_new_tokens=4000)
    endless = SamplingParams(max_new_tokens=4000)  # seconds of work even on a quiet machine: the deadline ends it
    running = engine.generate(tenant="a", adapter=None, version=0, prompt="hi", params=endless, timeout=0.3)
    waiting = engine.generate(tenant="b", adapter=None, version=0, prompt="hi", params=endless, timeout=0.2)
    with pytest.raises(DeadlineExceededError):
        collect(waiting)
    with pytest.raises(DeadlineExceededError):
        collect(running)
    _wait_until(lambda: engine.stats().running == 0)


def test_flooding_tenant_does_not_starve_another(vault, make_engine):
    engine = make_engine(max_batch=2, max_waiting=64, max_waiting_per_tenant=16)
    flood = [engine.generate(tenant="flood", adapter=None, version=0, prompt="hi", params=SamplingParams(
        max_new_tokens=30)) for _ in range(2)]
    _wait_until(lambda: engine.stats().running == 2)
    flood += [engine.generate(tenant="flood", adapter=None, version=0, prompt="hi", params=SamplingParams(
        max_new_tokens=30)) for _ in range(16)]
    with pytest.raises(ResourceExhaustedError, match="flood"):
        engine.generate(tenant="flood", adapter=None, version=0, prompt="hi", params=LONG)
    started = time.monotonic()
    polite = engine.generate(tenant="polite", adapter=None, version=0, prompt="hi",
                             params=SamplingParams(max_new_tokens=5))
    assert collect(polite, timeout=30)[1].completion_tokens == 5
    waited = time.monotonic() - started
    finished_before = sum(1 for h in flood if h._sequence.done)
    # round-robin: the polite request joins at the first free row, i.e. after at most 2 flood requests end
    assert finished_before <= 4, f"{finished_before} flood requests finished first ({waited:.1f} s)"
    for handle in flood:
        collect(handle)


@pytest.mark.parametrize(("prompt", "params", "match"), [
    ("", SamplingParams(), "empty"),
    ("x" * 65, SamplingParams(), "at most 64"),
    ("hi", SamplingParams(max_new_tokens=65), "cap of 64"),
], ids=["empty-prompt", "prompt-too-long", "max-new-tokens-over-cap"])
def test_bad_requests_are_refused_before_they_queue(vault, make_engine, prompt, params, match):
    engine = make_engine()
    with pytest.raises(InvalidArgumentError, match=match):
        engine.generate(tenant="a", adapter=None, version=0, prompt=prompt, params=params)
    assert engine.stats().waiting == 0 and engine.stats().steps == 0


@pytest.mark.parametrize("kwargs", [dict(temperature=-1), dict(temperature=float("nan")), dict(top_p=0),
                                    dict(top_k=-1), dict(seed=-1), dict(max_new_tokens=0), dict(stop=("",)),
                                    dict(stop=tuple("abcdefghi"))],
                         ids=["negative-temperature", "nan-temperature", "zero-top-p", "negative-top-k",
                              "negative-seed", "zero-new-tokens", "empty-stop", "nine-stops"])
def test_sampling_params_refuse_out_of_range_values(kwargs):
    with pytest.raises(InvalidArgumentError):
        SamplingParams(**kwargs)


def test_unknown_adapter_and_version_are_not_found(vault, make_engine):
    vault.credentials.create_tenant("acme")
    upload(vault, tenant="acme", name="a", adapter=tiny_adapter(1))
    engine = make_engine()
    with pytest.raises(NotFoundError):
        engine.generate(tenant="acme", adapter="missing", version=0, prompt="hi", params=LONG)
    with pytest.raises(NotFoundError):
        engine.generate(tenant="acme", adapter="a", version=9, prompt="hi", params=LONG)


def test_stop_string_ends_generation_before_it(tiny, vault, make_engine):
    engine = make_engine()
    full = collect(engine.generate(tenant="a", adapter=None, version=0, prompt="Hello world",
                                   params=SamplingParams(max_new_tokens=12)))[1].text
    stop = full[3:5]
    done = collect(engine.generate(tenant="a", adapter=None, version=0, prompt="Hello world",
                                   params=SamplingParams(max_new_tokens=12, stop=(stop,))))[1]
    assert done.reason == "stop" and done.text == full[:full.index(stop)]


def test_stats_account_for_the_kv_cache_the_engine_holds(tiny, make_engine):
    engine = make_engine(max_batch=3, max_seq_len=96)
    config = tiny.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    # keys and values, per layer: rows x kv heads x tokens x head dim, float32
    expected = 2 * config.num_hidden_layers * 3 * config.num_key_value_heads * 96 * head_dim * 4
    assert engine.stats().kv_bytes == expected and engine.stats().cache_bytes == 0
