"""The streaming safetensors check agrees with the safetensors parser and refuses off-schema bytes early; the
zero-copy views built on it (core.tensor_views) refuse the same bytes and equal what safetensors decodes, also
over the huge-page buffer a download is assembled in."""

import gc
import json
import mmap
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.core import AdapterSchema, DeserializationError, InvalidArgumentError, TensorSpec, decode_tensors
from loravault.core import encode_tensors
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.core.tensor_views import tensors_from_buffer, writable_buffer

FP = "ab" * 32
A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"


def schema(width=16, dtype="float32"):
    return AdapterSchema(rank=4, alpha=8.0, target_modules=("q_proj",),
                         tensors=(TensorSpec(A, (4, width)), TensorSpec(B, (width, 4))), dtype=dtype,
                         base_fingerprint=FP)


def tensors(width=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {A: torch.randn(4, width, generator=g).to(dtype), B: torch.randn(width, 4, generator=g).to(dtype)}


def feed_all(check, data, chunk):
    for offset in range(0, len(data), chunk):
        check.feed(data[offset : offset + chunk])
    check.finish()


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 64), chunk=st.integers(1, 700), dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
       seed=st.integers(0, 1000))
def test_valid_bytes_pass_in_any_chunking_and_decode(width, chunk, dtype, seed):
    torch_dtype = getattr(torch, dtype)
    data = encode_tensors(tensors(width, torch_dtype, seed))
    check = StreamingTensorCheck(schema(width, dtype))
    feed_all(check, data, chunk)
    assert check.expected_size == len(data)
    assert set(decode_tensors(data)) == {A, B}


def _with_header(header, data_size=512):
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + b"\0" * data_size


GOOD = {A: {"dtype": "F32", "shape": [4, 16], "data_offsets": [0, 256]},
        B: {"dtype": "F32", "shape": [16, 4], "data_offsets": [256, 512]}}

HOSTILE = {
    "missing-tensor": (_with_header({A: GOOD[A]}, 256), InvalidArgumentError),
    "extra-tensor": (_with_header({**GOOD, "x.lora_A.weight": GOOD[A]}), InvalidArgumentError),
    "wrong-dtype": (_with_header({**GOOD, A: {**GOOD[A], "dtype": "F16"}}), InvalidArgumentError),
    "wrong-shape": (_with_header({**GOOD, A: {**GOOD[A], "shape": [16, 4]}}), InvalidArgumentError),
    "overlapping": (_with_header({**GOOD, B: {**GOOD[B], "data_offsets": [128, 384]}}), DeserializationError),
    "gap": (_with_header({**GOOD, B: {**GOOD[B], "data_offsets": [260, 516]}}, 516), DeserializationError),
    "negative-offsets": (_with_header({**GOOD, A: {**GOOD[A], "data_offsets": [256, 0]}}), DeserializationError),
    "string-offsets": (_with_header({**GOOD, A: {**GOOD[A], "data_offsets": ["0", "256"]}}), DeserializationError),
    "header-not-object": (_with_header([1, 2]), DeserializationError),
    "header-not-json": (b"\x05\0\0\0\0\0\0\0{{{{{" + b"\0" * 512, DeserializationError),
    "huge-header": ((1 << 40).to_bytes(8, "little") + b"{}", DeserializationError),
    "truncated-data": (_with_header(GOOD, 500), DeserializationError),
    "trailing-bytes": (_with_header(GOOD, 520), DeserializationError),
    "empty": (b"", DeserializationError),
    "nan-value": (_with_header(GOOD, 0) + torch.tensor([float("nan")] * 128).numpy().tobytes(), InvalidArgumentError),
    "inf-value": (_with_header(GOOD, 0) + torch.full((128,), float("inf")).numpy().tobytes(), InvalidArgumentError),
}


@pytest.mark.parametrize("data, error", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_hostile_streams_are_refused(data, error, chunk):
    with pytest.raises(error):
        feed_all(StreamingTensorCheck(schema()), data, chunk)


def test_wrong_header_is_refused_before_the_data_arrives():
    data = _with_header({A: GOOD[A]}, 1 << 20)
    check = StreamingTensorCheck(schema())
    header_end = 8 + int.from_bytes(data[:8], "little")
    with pytest.raises(InvalidArgumentError):
        check.feed(data[:header_end])


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["float32", "float16", "bfloat16"]), bad=st.sampled_from(["nan", "inf", "-inf"]),
       position=st.integers(0, 2 * 4 * 16 - 1), chunk=st.integers(1, 97))
def test_one_non_finite_value_is_found_wherever_the_chunks_split_it(dtype, bad, position, chunk):
    values = tensors(16, getattr(torch, dtype))
    flat = values[A] if position < 64 else values[B]
    flat.view(-1)[position % 64] = float(bad)
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        feed_all(StreamingTensorCheck(schema(16, dtype)), encode_tensors(values), chunk)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_largest_finite_values_pass(dtype):
    info = torch.finfo(getattr(torch, dtype))
    values = {A: torch.full((4, 16), info.max).to(getattr(torch, dtype)),
              B: torch.full((16, 4), -info.max).to(getattr(torch, dtype))}
    feed_all(StreamingTensorCheck(schema(16, dtype)), encode_tensors(values), 7)


@pytest.mark.parametrize("data, error", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_buffers_are_refused_before_any_view_is_made(data, error):
    with pytest.raises(error):
        tensors_from_buffer(bytearray(data), schema())


@settings(max_examples=30, deadline=None)
@given(width=st.integers(1, 64), dtype=st.sampled_from(["float32", "float16", "bfloat16"]), seed=st.integers(0, 1000))
def test_views_equal_safetensors_decoding_and_share_the_buffer(width, dtype, seed):
    buffer = bytearray(encode_tensors(tensors(width, getattr(torch, dtype), seed)))
    views = tensors_from_buffer(buffer, schema(width, dtype))
    decoded = decode_tensors(bytes(buffer))
    assert views.keys() == decoded.keys()
    assert all(views[name].equal(decoded[name]) and views[name].dtype == decoded[name].dtype for name in decoded)
    start = torch.frombuffer(buffer, dtype=torch.uint8).data_ptr()
    assert all(start <= view.data_ptr() < start + len(buffer) for view in views.values())  # no copy was made


def test_a_large_writable_buffer_is_zeroed_and_outlives_its_last_name_through_its_views():
    width = 80_000  # 2.4 MB of float32
    data = encode_tensors(tensors(width, torch.float32, 0))
    buffer = writable_buffer(len(data))
    assert len(buffer) == len(data) and buffer[:16] == bytes(16) and buffer[-16:] == bytes(16)
    if sys.platform == "linux":
        assert isinstance(buffer, mmap.mmap)  # the huge-page mapping, not a bytearray
    buffer[:] = data
    views = tensors_from_buffer(buffer, schema(width, "float32"))
    expected = decode_tensors(data)
    del buffer
    gc.collect()
    assert all(views[name].equal(expected[name]) for name in expected)  # the mapping is still there


@pytest.mark.parametrize("size", [0, 1, (2 << 20) - 1])
def test_a_small_writable_buffer_is_a_bytearray(size):
    buffer = writable_buffer(size)
    assert isinstance(buffer, bytearray) and buffer == bytearray(size)
