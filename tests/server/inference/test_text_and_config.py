"""Text deltas (stop strings held back until decided, multi-byte characters kept whole), the fair queue's
rotation, and the engine configuration refusing impossible bounds."""

from __future__ import annotations

import pytest

from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError
from loravault.core.tokenizer import byte_tokenizer
from loravault.server.inference import InferenceConfig
from loravault.server.inference.requests import Sequence, Target
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
                                    dict(max_prompt_tokens=600, max_seq_len=512), dict(cache_bytes=0)],
                         ids=["dtype", "device", "batch", "default-over-cap", "prompt-over-length", "cache"])
def test_inference_config_refuses_impossible_bounds(kwargs):
    with pytest.raises(InvalidArgumentError):
        InferenceConfig(**kwargs)
