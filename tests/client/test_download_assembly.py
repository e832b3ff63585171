"""A download is assembled in a buffer of its recorded size and checked as it arrives: a stream longer or shorter
than that is data loss, and values that are not the adapter's are refused before the rest is received."""

import hashlib

import pytest
import torch

from loravault.client.sdk import _receive_blob
from loravault.core import AdapterSchema, DataLossError, InvalidArgumentError, encode_tensors
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.core.tensor_views import tensors_from_buffer
from loravault.proto import loravault_pb2 as pb

_NAMES = ("base_model.model.m.q_proj.lora_A.weight", "base_model.model.m.q_proj.lora_B.weight")


def _adapter(fill: float = 0.5) -> tuple[AdapterSchema, dict[str, torch.Tensor], bytes]:
    tensors = {_NAMES[0]: torch.full((2, 64), fill), _NAMES[1]: torch.full((64, 2), fill)}
    schema = AdapterSchema.from_tensors(tensors, rank=2, alpha=4.0, target_modules=("q_proj",),
                                        base_fingerprint="0" * 64)
    return schema, tensors, encode_tensors(tensors)


def _cut(data: bytes, size: int) -> list[memoryview]:
    return [memoryview(data[o : o + size]) for o in range(0, len(data), size)]


def test_chunks_and_parsed_messages_fill_the_buffer_in_order_with_their_digest_and_are_checked():
    schema, tensors, data = _adapter()
    check = StreamingTensorCheck(schema)
    stream = iter([memoryview(data[:100]), pb.DownloadMessage(chunk=data[100:])])
    buffer, digest = _receive_blob(stream, size=len(data), what="d", check=check)
    assert buffer == bytearray(data) and digest == hashlib.sha256(data).hexdigest()
    views = tensors_from_buffer(buffer, schema, fed=check)
    assert all(torch.equal(views[name], tensors[name]) for name in _NAMES)


@pytest.mark.parametrize("extra, message", [
    (b"x", "more than its recorded"),
    (None, "ended after"),
], ids=["too-long", "too-short"])
def test_a_stream_that_differs_from_its_recorded_size_is_refused(extra, message):
    schema, _, data = _adapter()
    chunks = _cut(data, 256)
    chunks = [*chunks, memoryview(extra)] if extra is not None else chunks[:-1]
    with pytest.raises(DataLossError, match=message):
        _receive_blob(iter(chunks), size=len(data), what="download of a v1", check=StreamingTensorCheck(schema))


def test_a_non_finite_value_is_refused_as_its_chunk_arrives():
    schema, _, data = _adapter(fill=float("nan"))
    chunks = _cut(data, 256)
    pulled = []

    def stream():
        for chunk in chunks:
            pulled.append(chunk)
            yield chunk

    with pytest.raises(InvalidArgumentError, match="finite"):
        _receive_blob(stream(), size=len(data), what="d", check=StreamingTensorCheck(schema))
    assert len(pulled) < len(chunks)  # refused before the rest of the stream was received
