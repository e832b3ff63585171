"""Chunk messages of the adapter byte streams, framed by hand so that 1 MiB payloads skip protobuf's copies.

A stream message (UploadMessage, DownloadMessage, ErasureMessage) whose only field is its `chunk` is, on the
wire, that field's tag, the payload's length as a varint, then the payload (protobuf encoding, "Length-delimited
records"). Through protobuf, a sender copies each payload into the message and again into its serialized
bytes, and a receiver copies it out of the received bytes twice more. `ChunkFraming.encode` writes those bytes
with one copy of the payload; `ChunkFraming.payload` recognizes them and returns a view of the payload without
copying, and answers None for every other message, which then goes through protobuf's own parser. The bytes
are exactly those protobuf writes and reads, so a peer built from the .proto files alone sees no difference.

    >>> UPLOAD_CHUNKS.encode(b"abc") == pb.UploadMessage(chunk=b"abc").SerializeToString()
    True
    >>> bytes(UPLOAD_CHUNKS.payload(UPLOAD_CHUNKS.encode(b"abc")))
    b'abc'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from . import loravault_pb2 as pb

__all__ = ["DOWNLOAD_CHUNKS", "ERASURE_CHUNKS", "MAX_CHUNK_BYTES", "UPLOAD_CHUNKS", "ChunkFraming"]

# The wire contract's bound on one chunk of an adapter, delta or aggregate stream: senders split at it, the
# server refuses a larger chunk with RESOURCE_EXHAUSTED. gRPC's default receive limit (4 MiB) leaves room.
MAX_CHUNK_BYTES = 1 << 20

_LENGTH_DELIMITED = 2  # protobuf wire type of bytes fields
_MAX_VARINT_BYTES = 10


@dataclass(frozen=True)
class ChunkFraming:
    """The wire form of `message_type`'s bytes field `field_name` when it is the message's only field."""

    message_type: type[Message]
    field_name: str = "chunk"
    _tag: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        descriptor = self.message_type.DESCRIPTOR.fields_by_name.get(self.field_name)
        if descriptor is None or descriptor.type != FieldDescriptor.TYPE_BYTES or descriptor.is_repeated:
            raise TypeError(f"{self.message_type.DESCRIPTOR.full_name}.{self.field_name} is not a singular bytes field")
        object.__setattr__(self, "_tag", _varint((descriptor.number << 3) | _LENGTH_DELIMITED))

    def encode(self, payload: bytes | bytearray | memoryview) -> bytes:
        """The serialized message carrying `payload` as its chunk, built with one copy of the payload."""
        return b"".join((self._tag, _varint(len(payload)), payload))

    def payload(self, data: bytes) -> memoryview | None:
        """A view of the chunk when `data` is a message holding its chunk and nothing else; None otherwise.

        None is no verdict on `data`: the caller parses it with protobuf, which refuses what is malformed.
        """
        tag = self._tag
        if not data.startswith(tag):
            return None
        length, start = 0, len(tag)
        for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
            if start >= len(data):
                return None
            byte = data[start]
            start += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
        else:
            return None
        if start + length != len(data):
            return None
        return memoryview(data)[start:]

    def deserializer(self) -> Callable[[bytes], Message | memoryview]:
        """For gRPC: a chunk-only message becomes a view of its payload, any other a parsed message."""
        parse = self.message_type.FromString

        def deserialize(data: bytes) -> Message | memoryview:
            view = self.payload(data)
            return parse(data) if view is None else view

        return deserialize

    @staticmethod
    def serialize(message: Message | bytes) -> bytes:
        """For gRPC: bytes from `encode` go out as they are, a message is serialized by protobuf."""
        return message if isinstance(message, bytes) else message.SerializeToString()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


UPLOAD_CHUNKS = ChunkFraming(pb.UploadMessage)
DOWNLOAD_CHUNKS = ChunkFraming(pb.DownloadMessage)
ERASURE_CHUNKS = ChunkFraming(pb.ErasureMessage)
