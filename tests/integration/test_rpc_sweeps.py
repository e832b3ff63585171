"""Every RPC probed from outside, enumerated from the service descriptors so that a new RPC cannot be missed.

- Cross-tenant: tenant mallory names tenant acme's resources in every field that can name them; every call
  answers NOT_FOUND (or PERMISSION_DENIED for admin calls), exactly as for a missing resource, and the vault's
  state (versions, heads, blobs, audit log, keys, tokens) is unchanged.
- No or a wrong token: every call answers UNAUTHENTICATED.
- Hostile values: every scalar field of every request message (nested messages included) set to boundary
  values (0, -1, 2^31, 2^63 - 1, 2^63, 2^64 - 1, empty, huge, NUL, non-UTF-8): no answer is UNKNOWN or INTERNAL.
- Raw bytes: every RPC fed bytes that are not its message: INVALID_ARGUMENT (UNAUTHENTICATED without a token),
  never UNKNOWN or INTERNAL, and no traceback in the server's log.

Every loop is a fixed table; each call has a deadline.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from loravault.core.base_layout import BaseLayout
from loravault.proto import loravault_pb2 as pb
from loravault.server.rpc.app import SERVICE_NAMES

from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.events import PurgeEvents
from loravault.server.inference import InferenceConfig, InferenceEngine
from loravault.server.main import build_erasure_pipeline
from loravault.server.vault import Vault

from .conftest import RunningServer
from .erasure_kit import ADAPTER, TENANT, make_world, vault_state

METHODS: list[MethodDescriptor] = [m for name in SERVICE_NAMES for m in pb.DESCRIPTOR.services_by_name[
    name.rsplit(".", 1)[1]].methods]
ADMIN_ONLY = {m.full_name for m in pb.DESCRIPTOR.services_by_name["Admin"].methods}
ACTS_ON_CALLER = {"loravault.v1.Tenants.WhoAmI", "loravault.v1.Erasure.GetServerKey"}  # name no tenant
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
DEADLINE = 20


def _ids(method: MethodDescriptor) -> str:
    return method.full_name.removeprefix("loravault.v1.")


def _message_class(descriptor) -> type[Message]:
    return getattr(pb, descriptor.name)


def _naming_acme(descriptor) -> Message:
    """A request whose every tenant and adapter field names acme's resources (header parts of streams too)."""
    message = _message_class(descriptor)()
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING and field.name in ("tenant", "name"):
            setattr(message, field.name, TENANT)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name == "adapter":
            setattr(message, field.name, ADAPTER)
        elif field.message_type is not None and not field.is_repeated and field.name in ("ref", "header", "model"):
            getattr(message, field.name).CopyFrom(_naming_acme(field.message_type))
    return message


def _call(channel: grpc.Channel, method: MethodDescriptor, payload: bytes, token: str | None) -> grpc.StatusCode:
    """Send one serialized request message (as the whole stream, for streaming requests); the status code."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
            (False, True): channel.unary_stream, (True, True): channel.stream_stream}[
        (method.client_streaming, method.server_streaming)]
    call = kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    request = iter([payload]) if method.client_streaming else payload
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    try:
        answer = call(request, metadata=metadata, timeout=DEADLINE)
        if method.server_streaming:
            for _ in answer:
                pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def erasure_server(tmp_path, tiny) -> Iterator[RunningServer]:
    """A server with every service live: the erasure pipeline (which also signs round receipts) and a small
    inference engine, joined by one PurgeEvents."""
    data = tmp_path / "data"
    data.mkdir()
    config = ServerConfig(data_dir=data, port=0)
    vault = Vault.open(data, base_fingerprint=tiny.fingerprint)
    token = vault.credentials.ensure_admin_token(config.admin_token_path)
    events = PurgeEvents()
    engine = InferenceEngine(tiny, vault=vault, config=InferenceConfig(
        max_batch=2, max_waiting=4, max_waiting_per_tenant=4, max_new_tokens=4, default_new_tokens=2,
        max_prompt_tokens=64))
    events.subscribe(engine)
    engine.start()
    state = ServerState(vault=vault, base=BaseLayout.of(tiny),
                        max_chunk_bytes=MAX_CHUNK_BYTES, base_model=tiny, inference=engine, events=events,
                        erasure=build_erasure_pipeline(config, vault=vault, base=tiny, events=events))
    grpc_server, port = create_server(config, state=state)
    grpc_server.start()
    try:
        yield RunningServer(f"127.0.0.1:{port}", token, data, vault, tiny.fingerprint, state)
    finally:
        grpc_server.stop(None)
        engine.close()
        vault.close()


@pytest.fixture
def world(erasure_server):
    return make_world(erasure_server)


@pytest.fixture
def mallory(erasure_server, world):
    with erasure_server.client() as admin:
        admin.create_tenant("mallory")
        return admin.issue_token(tenant="mallory").token


def _keys_and_tokens(world) -> tuple:
    with world.server.client() as admin:
        return (world.client.list_keys(), sorted((t.token_id, t.revoked) for t in admin.list_tokens(tenant=TENANT)))


def test_every_rpc_is_in_the_sweeps():
    """The sweeps read the descriptors; this pins that they see every service the server registers."""
    assert {m.containing_service.name for m in METHODS} == {"Admin", "Tenants", "Adapters", "Erasure", "Inference",
                                                           "Federation"}
    assert ACTS_ON_CALLER <= {m.full_name for m in METHODS} and len(METHODS) >= 27


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_cross_tenant_calls_find_nothing_and_change_nothing(erasure_server, world, mallory, method):
    before = (vault_state(erasure_server), _keys_and_tokens(world))
    with grpc.insecure_channel(erasure_server.target) as channel:
        code = _call(channel, method, _naming_acme(method.input_type).SerializeToString(), mallory)
    if method.full_name in ADMIN_ONLY:
        assert code == grpc.StatusCode.PERMISSION_DENIED
    elif method.full_name in ACTS_ON_CALLER:
        assert code == grpc.StatusCode.OK
    else:
        assert code == grpc.StatusCode.NOT_FOUND, f"{method.full_name} answered {code.name} for acme's resources"
    assert (vault_state(erasure_server), _keys_and_tokens(world)) == before


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_every_rpc_needs_a_valid_token(erasure_server, world, method):
    payload = _naming_acme(method.input_type).SerializeToString()
    with grpc.insecure_channel(erasure_server.target) as channel:
        assert _call(channel, method, payload, None) == grpc.StatusCode.UNAUTHENTICATED
        assert _call(channel, method, payload, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED


_PLACEHOLDER = "\u2603" * 4  # 12 bytes of UTF-8, swapped for 12 invalid bytes on the wire
_NOT_UTF8 = b"\xff\xfe\xfd\xfc" * 3
HOSTILE = {
    FieldDescriptor.TYPE_UINT64: [0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1],
    FieldDescriptor.TYPE_UINT32: [0, 1, 2**31, 2**32 - 1],
    FieldDescriptor.TYPE_INT64: [-1, -(2**63), 2**63 - 1],
    FieldDescriptor.TYPE_INT32: [-1, -(2**31), 2**31 - 1],
    FieldDescriptor.TYPE_FLOAT: [-1.0, float("nan"), float("inf"), 3.4e38],
    FieldDescriptor.TYPE_DOUBLE: [-1.0, float("nan"), float("-inf"), 1e308],
    FieldDescriptor.TYPE_BOOL: [True],
    FieldDescriptor.TYPE_STRING: ["", "x" * 70_000, "a\x00b", "../../etc/passwd", "\u202e\U0001f600", _PLACEHOLDER],
    FieldDescriptor.TYPE_BYTES: [b"", b"\x00" * 70_000, b"\xff" * 33],
}


def _hostile_requests(descriptor, *, depth: int = 0) -> Iterator[tuple[str, Message]]:
    """(label, request) for every scalar field, at every nesting level, set to each hostile value, the rest
    naming acme's resources."""
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            yield from _hostile_map_entries(descriptor, field)
            continue
        if field.message_type is not None:
            if depth < 2:
                for label, inner in _hostile_requests(field.message_type, depth=depth + 1):
                    message = _naming_acme(descriptor)
                    target = getattr(message, field.name)
                    (target.add() if field.is_repeated else target).CopyFrom(inner)
                    yield f"{field.name}.{label}", message
            continue
        for value in HOSTILE.get(field.type, []):
            message = _naming_acme(descriptor)
            if field.is_repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)
            yield f"{field.name}={str(value)[:12]!r}", message


def _hostile_map_entries(descriptor, field) -> Iterator[tuple[str, Message]]:
    """A map field gets one entry with a hostile key (and a plain value), then one with a hostile value."""
    key, value = (field.message_type.fields_by_name[name] for name in ("key", "value"))
    plain = {FieldDescriptor.TYPE_STRING: "model.layers.0.self_attn.q_proj"}.get(value.type, 1)
    entries = [(k, plain) for k in HOSTILE[key.type]] + [("model.layers.0.self_attn.q_proj", v)
                                                          for v in HOSTILE[value.type]]
    for k, v in entries:
        message = _naming_acme(descriptor)
        getattr(message, field.name)[k] = v
        yield f"{field.name}[{str(k)[:12]!r}]={str(v)[:12]!r}", message


def _wire(message: Message) -> bytes:
    return message.SerializeToString().replace(_PLACEHOLDER.encode(), _NOT_UTF8)


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_hostile_field_values_never_answer_unknown_or_internal(erasure_server, world, method):
    tokens = [world.token, erasure_server.admin_token] if method.full_name in ADMIN_ONLY else [world.token]
    answers = {}
    with grpc.insecure_channel(erasure_server.target) as channel:
        for label, message in _hostile_requests(method.input_type):
            for token in tokens:
                answers[label] = _call(channel, method, _wire(message), token)
    bad = {label: code.name for label, code in answers.items() if code in BAD}
    assert not bad, f"{method.full_name}: {bad}"
    assert answers or not method.input_type.fields
    assert world.client.whoami().tenant == TENANT  # still answering


@pytest.mark.parametrize("field", ["ListVersionsRequest.after", "DownloadRequest.version",
                                   "RollbackRequest.to_version", "RollbackRequest.parent_version"])
def test_uint64_past_the_signed_range_is_invalid_argument_without_backend_names(world, field):
    message_name, name = field.split(".")
    message = _naming_acme(getattr(pb, message_name).DESCRIPTOR)
    message.ref.tenant = ""
    setattr(message, name, 2**63)
    method = next(m for m in METHODS if m.input_type.name == message_name)
    with grpc.insecure_channel(world.server.target) as channel:
        path = f"/{method.containing_service.full_name}/{method.name}"
        stub = (channel.unary_stream if method.server_streaming else channel.unary_unary)(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub(message.SerializeToString(), metadata=(("authorization", f"Bearer {world.token}"),),
                      timeout=DEADLINE)) if method.server_streaming else stub(
                message.SerializeToString(), metadata=(("authorization", f"Bearer {world.token}"),),
                timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{name} is {2**63}" in refused.value.details()
    assert "sqlite" not in refused.value.details().lower() and "sql" not in refused.value.details().lower()


def _raw_inputs() -> dict[str, bytes]:
    rng = random.Random(17)
    return {
        "truncated varint": b"\x08\xff",
        "bad wire type": b"\x0f",
        "length past end": b"\x0a\x7f\x01",
        "field 0": b"\x00\x01",
        "deep group": b"\x0b" * 200,
        "random 64": bytes(rng.randrange(256) for _ in range(64)),
        "random 4096": bytes(rng.randrange(256) for _ in range(4096)),
    }


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_raw_bytes_are_invalid_argument_and_log_no_traceback(erasure_server, world, method, caplog):
    caplog.set_level(logging.INFO)
    answers = {}
    with grpc.insecure_channel(erasure_server.target) as channel:
        for label, data in _raw_inputs().items():
            answers[label] = (_call(channel, method, data, world.token), _call(channel, method, data, None))
    refused = grpc.StatusCode.INVALID_ARGUMENT
    bad = {label: (a.name, b.name) for label, (a, b) in answers.items()
           if a != refused or b != grpc.StatusCode.UNAUTHENTICATED}
    assert not bad, f"{method.full_name}: {bad}"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unparsable" in r.getMessage()]
    assert len(warnings) <= 1  # rate-limited: one line however many arrive
