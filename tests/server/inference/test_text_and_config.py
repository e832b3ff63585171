"""Text deltas (stop strings held back until decided, multi-byte characters kept whole, tokens sent together
within the stream interval), the fair queue's rotation, and the engine configuration refusing impossible
bounds."""

from __future__ import annotations

import pytest

from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError
from loravault.core.tokenizer import byte_tokenizer
from loravault.server.inference import InferenceConfig
from loravault.server.inference.requests import Delta, Sequence, Target
from loravault.server.inference.scheduler import FairQueue
from loravault.server.inference.text import SharedTokenizer, TextStream


def _stream(text: str, stop: tuple[str, ...]) -> tuple[list[str], TextStream]:
    tokenizer = SharedTokenizer(byte_tokenizer())
    stream = TextStream(tokenizer, stop=stop)
    deltas = []
    for token in tokenizer.encode(text):
        deltas.append(stream.push(token))
        if stream.stopped:
            break
    deltas.append(stream.flush())
    return deltas, stream


def test_deltas_join_to_the_text_and_multibyte_characters_arrive_whole():
    deltas, stream = _stream("héllo wörld", ())
    assert "".join(deltas) == stream.text == "héllo wörld"
    assert all("\ufffd" not in d for d in deltas)


def test_a_stop_string_is_held_back_and_cut_off():
    deltas, stream = _stream("one END two", ("END",))
    assert stream.stopped and stream.text == "one " and "".join(deltas) == "one "
    assert not any("E" in d for d in deltas)


def test_a_near_miss_of_a_stop_string_is_sent_once_decided():
    deltas, stream = _stream("EN then more", ("END",))
    assert not stream.stopped and "".join(deltas) == "EN then more"


def test_the_shared_tokenizer_decodes_as_the_tokenizer_does():
    tokenizer = byte_tokenizer()
    ids = [tokenizer.bos_token_id, *tokenizer("héllo\n  wörld!")["input_ids"], tokenizer.eos_token_id]
    shared = SharedTokenizer(tokenizer)
    for end in range(1, len(ids) + 1):
        assert shared.decode(ids[:end]) == tokenizer.decode(ids[:end], skip_special_tokens=True)


def _drain(sequence: Sequence) -> list[Delta]:
    sent = []
    while not sequence.outbox.empty():
        event = sequence.outbox.get()
        assert isinstance(event, Delta)
        sent.append(event)
    return sent


def test_tokens_within_the_stream_interval_are_sent_as_one_delta_and_the_last_at_once():
    sequence = _sequence("acme", 1)
    for token, now in ((1, 0.0), (2, 0.005), (3, 0.01), (4, 0.03), (5, 0.031)):
        sequence.send(Delta(text=f"t{token} ", token_ids=(token,)), now=now, interval=0.02, final=False)
    sequence.send(Delta(text="end", token_ids=(6,)), now=0.032, interval=0.02, final=True)
    assert [(d.text, d.token_ids) for d in _drain(sequence)] == [
        ("t1 ", (1,)), ("t2 t3 t4 ", (2, 3, 4)), ("t5 end", (5, 6))]
    assert not sequence.unsent


def test_a_zero_stream_interval_sends_every_token_by_itself():
    sequence = _sequence("acme", 1)
    for token in range(3):
        sequence.send(Delta(text=str(token), token_ids=(token,)), now=0.0, interval=0.0, final=token == 2)
    assert [d.token_ids for d in _drain(sequence)] == [(0,), (1,), (2,)]


def _sequence(tenant: str, number: int) -> Sequence:
    return Sequence(id=number, target=Target(tenant=tenant, adapter=None, version=0, slot=None), prompt_ids=[1],
                    deadline=None)


def test_fair_queue_rotates_between_tenants_and_bounds_each_share():
    queue = FairQueue(max_total=10, max_per_tenant=3)
    for number in range(3):
        queue.push(_sequence("flood", number))
    with pytest.raises(ResourceExhaustedError, match="flood"):
        queue.push(_sequence("flood", 9))
    queue.push(_sequence("polite", 100))
    order = [queue.pop().id for _ in range(4)]
    assert order == [0, 100, 1, 2] and len(queue) == 0


@pytest.mark.parametrize("kwargs", [dict(dtype="float64"), dict(device="tpu:0"), dict(max_batch=0),
                                    dict(default_new_tokens=300, max_new_tokens=256),
                                    dict(max_prompt_tokens=600, max_seq_len=512), dict(cache_bytes=0),
                                    dict(stream_interval_s=-0.01), dict(stream_interval_s=2.0)],
                         ids=["dtype", "device", "batch", "default-over-cap", "prompt-over-length", "cache",
                              "negative-interval", "interval-over-1s"])
def test_inference_config_refuses_impossible_bounds(kwargs):
    with pytest.raises(InvalidArgumentError):
        InferenceConfig(**kwargs)
