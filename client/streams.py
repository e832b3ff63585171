"""The adapter byte streams as gRPC calls that frame their chunks by hand (loravault.proto.ChunkFraming).

Upload and Erasure.Submit send pre-encoded chunk messages (one copy of each payload instead of three), and
Download hands each chunk-only message back as a memoryview of its payload (no copy instead of two). The bytes
on the wire are protobuf's own, so the server sees the contract's messages either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from loravault.proto import DOWNLOAD_CHUNKS, ChunkFraming
from loravault.proto import loravault_pb2 as pb

__all__ = ["FramedStreams"]


@dataclass(frozen=True)
class FramedStreams:
    """The three streaming calls of one channel whose messages carry adapter bytes."""

    upload: grpc.StreamUnaryMultiCallable  # UploadMessage or UPLOAD_CHUNKS.encode(...) bytes -> Version
    download: grpc.UnaryStreamMultiCallable  # DownloadRequest -> DownloadMessage or memoryview chunks
    submit: grpc.StreamUnaryMultiCallable  # ErasureMessage or ERASURE_CHUNKS.encode(...) bytes -> ErasureReceipt

    @classmethod
    def on(cls, channel: grpc.Channel) -> FramedStreams:
        adapters = pb.DESCRIPTOR.services_by_name["Adapters"].full_name
        erasure = pb.DESCRIPTOR.services_by_name["Erasure"].full_name
        return cls(
            upload=channel.stream_unary(f"/{adapters}/Upload", request_serializer=ChunkFraming.serialize,
                                        response_deserializer=pb.Version.FromString),
            download=channel.unary_stream(f"/{adapters}/Download",
                                          request_serializer=pb.DownloadRequest.SerializeToString,
                                          response_deserializer=DOWNLOAD_CHUNKS.deserializer()),
            submit=channel.stream_unary(f"/{erasure}/Submit", request_serializer=ChunkFraming.serialize,
                                        response_deserializer=pb.ErasureReceipt.FromString),
        )
