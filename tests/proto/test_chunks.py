"""Chunk framing writes and reads exactly protobuf's bytes, and hands every other message to protobuf."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loravault.proto import DOWNLOAD_CHUNKS, ERASURE_CHUNKS, UPLOAD_CHUNKS, ChunkFraming
from loravault.proto import loravault_pb2 as pb

FRAMINGS = [UPLOAD_CHUNKS, DOWNLOAD_CHUNKS, ERASURE_CHUNKS]
# lengths around the varint's byte boundaries, and a whole 1 MiB chunk
LENGTHS = [0, 1, 127, 128, 16_383, 16_384, 1 << 20]


@pytest.mark.parametrize("framing", FRAMINGS, ids=lambda f: f.message_type.__name__)
@pytest.mark.parametrize("length", LENGTHS)
def test_encoded_chunk_is_byte_equal_to_protobufs_and_reads_back(framing, length):
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    encoded = framing.encode(memoryview(payload))
    assert encoded == framing.message_type(chunk=payload).SerializeToString()
    view = framing.payload(encoded)
    assert isinstance(view, memoryview) and view.tobytes() == payload


@given(st.binary(max_size=4096))
def test_payload_round_trips_any_bytes(payload):
    assert UPLOAD_CHUNKS.payload(UPLOAD_CHUNKS.encode(payload)).tobytes() == payload


def _with_unknown_field(message):
    """The message's bytes followed by field 15 (varint 1), which loravault.v1 does not declare."""
    return message.SerializeToString() + bytes([15 << 3, 1])


@pytest.mark.parametrize("data", [
    pb.UploadMessage(header=pb.UploadHeader(total_size=3)).SerializeToString(),
    pb.UploadMessage(trailer=pb.UploadTrailer(sha256="ab" * 32)).SerializeToString(),
    _with_unknown_field(pb.UploadMessage(chunk=b"abc")),
    pb.UploadMessage(chunk=b"abc").SerializeToString() * 2,  # the field twice: protobuf keeps the last
    pb.UploadMessage(chunk=b"abc").SerializeToString()[:-1],  # truncated payload
    bytes([2 << 3 | 2, 0x80]),  # varint that never ends
    bytes([2 << 3 | 2]) + b"\xff" * 11,  # varint longer than ten bytes
    b"",
], ids=["header", "trailer", "unknown-field", "repeated-field", "truncated", "open-varint", "long-varint", "empty"])
def test_payload_leaves_every_other_message_to_protobuf(data):
    assert UPLOAD_CHUNKS.payload(data) is None


def test_deserializer_parses_what_is_not_a_bare_chunk():
    deserialize = UPLOAD_CHUNKS.deserializer()
    header = pb.UploadMessage(header=pb.UploadHeader(total_size=3))
    assert deserialize(header.SerializeToString()) == header
    assert bytes(deserialize(UPLOAD_CHUNKS.encode(b"xyz"))) == b"xyz"
    unknown = deserialize(_with_unknown_field(pb.UploadMessage(chunk=b"abc")))
    assert isinstance(unknown, pb.UploadMessage) and unknown.chunk == b"abc"


def test_serialize_passes_encoded_bytes_and_serializes_messages():
    header = pb.UploadMessage(header=pb.UploadHeader(total_size=3))
    assert ChunkFraming.serialize(header) == header.SerializeToString()
    encoded = UPLOAD_CHUNKS.encode(b"abc")
    assert ChunkFraming.serialize(encoded) is encoded


@pytest.mark.parametrize("message_type, field", [(pb.UploadMessage, "header"), (pb.UploadMessage, "nope"),
                                                 (pb.UploadTrailer, "sha256")])
def test_framing_refuses_a_field_that_is_not_singular_bytes(message_type, field):
    with pytest.raises(TypeError, match="not a singular bytes field"):
        ChunkFraming(message_type, field)
