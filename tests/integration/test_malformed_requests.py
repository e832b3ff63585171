"""Malformed and hostile requests get clear errors with the right status, and change nothing."""

import hashlib

import grpc
import pytest
from google.protobuf.internal.encoder import _VarintBytes

from loravault.core import AdapterSchema, TensorSpec, encode_tensors
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from .conftest import big_schema, big_tensors

MIB = 1 << 20


@pytest.fixture
def acme(server):
    client = server.tenant("acme")
    issued = None
    with server.client() as admin:
        issued = admin.issue_token(tenant="acme")
    channel = grpc.insecure_channel(server.target)
    yield client, pb_grpc.AdaptersStub(channel), (("authorization", f"Bearer {issued.token}"),)
    channel.close()
    client.close()


def _upload(stub, metadata, messages):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Upload(iter(messages), metadata=metadata, timeout=30)
    return caught.value


def _header(total, parent=0, adapter="big"):
    return pb.UploadMessage(header=pb.UploadHeader(ref=pb.AdapterRef(adapter=adapter), parent_version=parent,
                                                   total_size=total))


def _trailer(data=None, sha=None):
    return pb.UploadMessage(trailer=pb.UploadTrailer(sha256=sha or hashlib.sha256(data).hexdigest()))


def _assert_unchanged(server, client):
    assert client.get_adapter("big").head_version == 0
    report = server.vault.adapters.fsck()
    assert report.clean, report


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "../etc", "a/b", "-lead", ".hidden", "sp ace", "nul\x00", "é", "a\n"],
    ids=["empty", "too-long", "dotdot", "slash", "dash-first", "dot-first", "space", "nul", "non-ascii", "newline"],
)
def test_bad_adapter_names_are_invalid_argument(server, acme, name):
    client, _, _ = acme
    schema = big_schema(server.fingerprint, rank=1)
    from loravault.core import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        client.create_adapter(name, schema)
    assert client.list_adapters() == []


def test_oversized_declared_size_is_refused_before_any_chunk(server, acme):
    client, stub, metadata = acme
    schema = big_schema(server.fingerprint, rank=32)
    client.create_adapter("big", schema)
    sent = []

    def stream():
        yield _header(schema.max_blob_bytes() + 1)
        for _ in range(64):  # would be 64 MiB if the server read it
            sent.append(1)
            yield pb.UploadMessage(chunk=b"\0" * MIB)

    error = _upload(stub, metadata, stream())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "allows at most" in error.details()
    assert len(sent) < 64
    _assert_unchanged(server, client)


def test_stream_longer_than_declared_is_cut_off(server, acme):
    client, stub, metadata = acme
    schema, data = _valid_bytes(server)
    client.create_adapter("big", schema)
    error = _upload(stub, metadata, [_header(len(data) - 10)] + _chunks(data) + [_trailer(data)])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_unchanged(server, client)


def _valid_bytes(server):
    schema = big_schema(server.fingerprint, rank=256)  # 2.2 MiB: more than one chunk
    return schema, encode_tensors(big_tensors(schema))


def _chunks(data):
    return [pb.UploadMessage(chunk=data[i : i + MIB]) for i in range(0, len(data), MIB)]


BAD_STREAMS = {
    "empty-stream": (lambda d: [], grpc.StatusCode.INVALID_ARGUMENT, "header"),
    "chunk-first": (lambda d: _chunks(d), grpc.StatusCode.INVALID_ARGUMENT, "header"),
    "zero-size": (lambda d: [_header(0)], grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    "truncated": (lambda d: [_header(len(d))] + _chunks(d[:-10]) + [_trailer(d)], grpc.StatusCode.INVALID_ARGUMENT,
                  "truncated"),
    "no-trailer": (lambda d: [_header(len(d))] + _chunks(d), grpc.StatusCode.INVALID_ARGUMENT, "trailer"),
    "wrong-digest": (lambda d: [_header(len(d))] + _chunks(d) + [_trailer(sha="ab" * 32)],
                     grpc.StatusCode.INVALID_ARGUMENT, "digest"),
    "bad-digest-format": (lambda d: [_header(len(d))] + _chunks(d) + [_trailer(sha="xyz")],
                          grpc.StatusCode.INVALID_ARGUMENT, "sha256"),
    "two-headers": (lambda d: [_header(len(d)), _header(len(d))], grpc.StatusCode.INVALID_ARGUMENT, "one header"),
    "chunk-after-trailer": (lambda d: [_header(len(d))] + _chunks(d) + [_trailer(d)] + _chunks(d[:10]),
                            grpc.StatusCode.INVALID_ARGUMENT, "after its trailer"),
    "oversized-chunk": (lambda d: [_header(len(d)), pb.UploadMessage(chunk=d[: MIB + 1])],
                        grpc.StatusCode.RESOURCE_EXHAUSTED, "chunk of"),
    "not-safetensors": (lambda d: [_header(len(d))] + _chunks(b"\1" * len(d)) + [_trailer(b"\1" * len(d))],
                        grpc.StatusCode.INVALID_ARGUMENT, "safetensors"),
    "stale-parent": (lambda d: [_header(len(d), parent=5)] + _chunks(d) + [_trailer(d)], grpc.StatusCode.ABORTED,
                     "head"),
    "unknown-adapter": (lambda d: [_header(len(d), adapter="nope")] + _chunks(d) + [_trailer(d)],
                        grpc.StatusCode.NOT_FOUND, "nope"),
}


@pytest.mark.parametrize("case", BAD_STREAMS.values(), ids=BAD_STREAMS.keys())
def test_bad_upload_streams_are_refused_and_change_nothing(server, acme, case):
    client, stub, metadata = acme
    build, code, words = case
    schema, data = _valid_bytes(server)
    client.create_adapter("big", schema)
    error = _upload(stub, metadata, build(data))
    assert error.code() == code, error.details()
    assert words in error.details()
    _assert_unchanged(server, client)


@pytest.mark.parametrize("wrong", ["shape", "dtype", "extra", "nan"])
def test_tensors_off_schema_are_refused(server, acme, wrong):
    import torch

    client, _, _ = acme
    schema = big_schema(server.fingerprint, rank=2)
    tensors = big_tensors(schema)
    name = schema.tensors[0].name
    if wrong == "shape":
        tensors[name] = torch.zeros(8, 255)
    elif wrong == "dtype":
        tensors[name] = tensors[name].half()
    elif wrong == "extra":
        tensors["m.k_proj.lora_A.weight"] = torch.zeros(1)
    else:
        tensors[name][0, 0] = float("nan")
    client.create_adapter("big", schema)
    from loravault.core import InvalidArgumentError, ResourceExhaustedError

    with pytest.raises((InvalidArgumentError, ResourceExhaustedError)):
        client.upload_tensors("big", tensors)
    _assert_unchanged(server, client)


def test_unknown_fields_are_refused(server, acme):
    _, _, metadata = acme
    channel = grpc.insecure_channel(server.target)
    call = channel.unary_unary("/loravault.v1.Adapters/ListAdapters", request_serializer=None,
                               response_deserializer=pb.ListAdaptersResponse.FromString)
    raw = pb.ListAdaptersRequest().SerializeToString() + _VarintBytes((99 << 3) | 0) + b"\x05"
    with pytest.raises(grpc.RpcError) as caught:
        call(raw, metadata=metadata, timeout=10)
    channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown field numbers [99]" in caught.value.details()


def test_health_and_reflection_answer_without_a_token(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="loravault.v1.Adapters"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in next(responses).list_services_response.service}
    assert {"loravault.v1.Adapters", "loravault.v1.Erasure", "grpc.health.v1.Health"} <= names


def test_schema_declaring_more_than_the_server_limit_is_refused_at_create(server, acme):
    """A schema of 2 TiB (8 x 2^36 float32 values per tensor) never becomes an adapter."""
    client, _, _ = acme
    from loravault.core import ResourceExhaustedError
    width = 1 << 36
    schema = AdapterSchema(rank=8, alpha=16.0, target_modules=("q_proj",),
                           tensors=(TensorSpec("m.q_proj.lora_A.weight", (8, width)),
                                    TensorSpec("m.q_proj.lora_B.weight", (width, 8))),
                           dtype="float32", base_fingerprint=server.fingerprint)
    with pytest.raises(ResourceExhaustedError, match="server's limit"):
        client.create_adapter("huge", schema)
    assert client.list_adapters() == []


def test_upload_header_over_the_server_limit_is_refused_before_any_byte(server, acme):
    """An adapter created under a larger limit cannot stream past the one this server runs with now."""
    client, stub, metadata = acme
    client.create_adapter("big", big_schema(server.fingerprint))  # 4.5 MiB: under the schema's own bound
    object.__setattr__(server.state, "max_adapter_bytes", MIB)  # the operator lowered the limit
    error = _upload(stub, metadata, [_header(4 * MIB + 200)])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "server's limit" in error.details()
    _assert_unchanged(server, client)


def test_schema_with_more_tensors_than_the_limit_is_invalid_argument(server, acme):
    from loravault.core.adapter_schema import MAX_TENSORS
    _, stub, metadata = acme
    names = sorted(f"m.l{i:05d}.q_proj.lora_{ab}.weight" for i in range(MAX_TENSORS // 2 + 1) for ab in "AB")
    schema = pb.AdapterSchema(rank=1, alpha=1.0, target_modules=["q_proj"], dtype="float32",
                              base_fingerprint=server.fingerprint,
                              tensors=[pb.TensorSpec(name=n, shape=[1, 1]) for n in names])
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateAdapter(pb.CreateAdapterRequest(ref=pb.AdapterRef(adapter="many"), schema=schema),
                           metadata=metadata, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_TENSORS}" in refused.value.details()


@pytest.mark.parametrize("text", ["[" * 2000 + "]" * 2000, '{"a":' * 600 + "1" + "}" * 600],
                         ids=["arrays", "objects"])
def test_deeply_nested_key_json_is_invalid_argument(server, acme, text):
    _, _, metadata = acme
    with grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.TenantsStub(channel).AddKey(pb.AddKeyRequest(public_key_json=text), metadata=metadata,
                                                timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "levels deep" in refused.value.details()
