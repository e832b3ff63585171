"""The SDK's hand-framed chunk streams and plain generated stubs interoperate with the server both ways."""

import hashlib

import grpc

from loravault.core import encode_tensors
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from .conftest import big_schema, big_tensors

MIB = 1 << 20


def _stub_and_metadata(server, tenant):
    with server.client() as admin:
        issued = admin.issue_token(tenant=tenant)
    channel = grpc.insecure_channel(server.target, options=[("grpc.max_receive_message_length", 4 * MIB)])
    return channel, pb_grpc.AdaptersStub(channel), (("authorization", f"Bearer {issued.token}"),)


def test_plain_stub_downloads_what_the_sdk_uploaded(server):
    client = server.tenant("acme")
    schema = big_schema(server.fingerprint)  # 4.5 MiB: four full chunks and a short one
    data = encode_tensors(big_tensors(schema))
    client.create_adapter("big", schema)
    version = client.upload_bytes("big", data)
    channel, stub, metadata = _stub_and_metadata(server, "acme")
    with channel:
        messages = list(stub.Download(pb.DownloadRequest(ref=pb.AdapterRef(adapter="big")), metadata=metadata))
    assert messages[0].WhichOneof("part") == "header"
    received = b"".join(m.chunk for m in messages[1:])
    assert received == data and hashlib.sha256(received).hexdigest() == version.blob_sha256
    assert max(len(m.chunk) for m in messages[1:]) == MIB
    client.close()


def test_sdk_downloads_what_a_plain_stub_uploaded(server):
    client = server.tenant("acme")
    schema = big_schema(server.fingerprint)
    tensors = big_tensors(schema, seed=3)
    data = encode_tensors(tensors)
    client.create_adapter("big", schema)
    channel, stub, metadata = _stub_and_metadata(server, "acme")
    header = pb.UploadHeader(ref=pb.AdapterRef(adapter="big"), parent_version=0, total_size=len(data))
    messages = [pb.UploadMessage(header=header)]
    messages += [pb.UploadMessage(chunk=data[i : i + MIB]) for i in range(0, len(data), MIB)]
    messages += [pb.UploadMessage(trailer=pb.UploadTrailer(sha256=hashlib.sha256(data).hexdigest()))]
    with channel:
        stub.Upload(iter(messages), metadata=metadata, timeout=30)
    _, found, downloaded = client.download_tensors("big")
    assert found.number == 1 and found.blob_sha256 == hashlib.sha256(data).hexdigest()
    assert downloaded.keys() == tensors.keys()
    assert all(downloaded[name].equal(tensor) for name, tensor in tensors.items())
    client.close()
