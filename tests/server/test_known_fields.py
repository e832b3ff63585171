"""check_message: unknown field numbers are refused at any depth, and set fields of every kind pass."""

import pytest
from google.protobuf.internal.encoder import _VarintBytes

from loravault.core import InvalidArgumentError
from loravault.proto import loravault_pb2 as pb
from loravault.server.rpc.edge import check_message

_UNKNOWN_99 = _VarintBytes((99 << 3) | 0) + b"\x05"


def _spec_with_unknown_field() -> pb.TensorSpec:
    return pb.TensorSpec.FromString(pb.TensorSpec(name="w", shape=[2]).SerializeToString() + _UNKNOWN_99)


def test_a_fully_known_request_passes():
    request = pb.CreateAdapterRequest(
        ref=pb.AdapterRef(adapter="a"),
        schema=pb.AdapterSchema(rank=8, tensors=[pb.TensorSpec(name="w", shape=[2]), pb.TensorSpec(name="v")]))
    check_message(request)
    check_message(pb.UploadMessage(chunk=b"\x00" * 1024))


def test_an_unknown_field_inside_a_repeated_message_is_refused():
    request = pb.CreateAdapterRequest(schema=pb.AdapterSchema(tensors=[pb.TensorSpec(name="v")]))
    request.schema.tensors.add().MergeFrom(_spec_with_unknown_field())
    with pytest.raises(InvalidArgumentError, match=r"TensorSpec carries unknown field numbers \[99\]"):
        check_message(request)


def test_an_unknown_field_inside_a_oneof_message_is_refused():
    header = pb.UploadHeader.FromString(pb.UploadHeader(total_size=3).SerializeToString() + _UNKNOWN_99)
    with pytest.raises(InvalidArgumentError, match=r"UploadHeader carries unknown field numbers \[99\]"):
        check_message(pb.UploadMessage(header=header))
