"""Services registered from their descriptors: every method, with framed chunks only on the byte streams."""

import pytest

from loravault.proto import DOWNLOAD_CHUNKS, ERASURE_CHUNKS, UPLOAD_CHUNKS
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.server.rpc.registration import add_servicer


class _RecordingServer:
    """Keeps what a grpc.Server would be given."""

    def __init__(self):
        self.generic, self.registered = [], {}

    def add_generic_rpc_handlers(self, handlers):
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service, handlers):
        self.registered[service] = handlers


def _handlers(service):
    server = _RecordingServer()
    add_servicer(server, getattr(pb_grpc, f"{service}Servicer")(), service)
    full_name = pb.DESCRIPTOR.services_by_name[service].full_name
    assert len(server.generic) == 1
    return server.registered[full_name]


@pytest.mark.parametrize("service", ["Admin", "Tenants", "Adapters", "Erasure", "Inference"])
def test_every_method_of_the_contract_is_registered_with_its_streaming_kind(service):
    handlers = _handlers(service)
    methods = pb.DESCRIPTOR.services_by_name[service].methods
    assert sorted(handlers) == sorted(m.name for m in methods)
    for method in methods:
        handler = handlers[method.name]
        streaming = (handler.request_streaming, handler.response_streaming)
        assert streaming == (method.client_streaming, method.server_streaming)


def test_upload_and_submit_requests_arrive_as_views_and_messages():
    upload, submit = _handlers("Adapters")["Upload"], _handlers("Erasure")["Submit"]
    assert bytes(upload.request_deserializer(UPLOAD_CHUNKS.encode(b"abc"))) == b"abc"
    assert bytes(submit.request_deserializer(ERASURE_CHUNKS.encode(b"abc"))) == b"abc"
    header = pb.UploadMessage(header=pb.UploadHeader(total_size=3))
    assert upload.request_deserializer(header.SerializeToString()) == header


def test_download_sends_encoded_chunks_as_they_are():
    download = _handlers("Adapters")["Download"]
    encoded = DOWNLOAD_CHUNKS.encode(b"abc")
    assert download.response_serializer(encoded) is encoded
    header = pb.DownloadMessage(header=pb.DownloadHeader())
    assert download.response_serializer(header) == header.SerializeToString()


def test_other_methods_keep_protobufs_own_serializers():
    get = _handlers("Adapters")["GetAdapter"]
    request = pb.GetAdapterRequest(ref=pb.AdapterRef(tenant="t", adapter="a"))
    assert get.request_deserializer(request.SerializeToString()) == request
    assert get.response_serializer(pb.Adapter(name="a")) == pb.Adapter(name="a").SerializeToString()
