"""Hostile and malformed erasure submissions: each is refused with its status code and leaves the head, the
blob files and the audit log exactly as they were (the replay is the one accepted, and changes nothing)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
import torch

from loravault.core import encode_tensors
from loravault.proto import MAX_CHUNK_BYTES
from loravault.proto import loravault_pb2 as pb
from loravault.proto.envelope import envelope_to_bytes, parse_envelope

from .erasure_kit import (
    ADAPTER,
    World,
    erasure_server,  # noqa: F401  (fixture)
    make_world,
    messages,
    new_signer,
    register_keys,
    sha256,
    synthetic_delta,
    vault_state,
)

Code = grpc.StatusCode


def _head(world: World) -> dict[str, torch.Tensor]:
    return world.head()[2]


def _valid(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission())


def _bad_signature(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    document = json.loads(sub.envelope)
    document["signatures"][0]["sig"] = base64.b64encode(b"\x01" * 64).decode()
    return messages(sub, envelope=json.dumps(document).encode())


def _unknown_key(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(signers=[new_signer()]))


def _key_of_another_tenant(world: World) -> list[pb.ErasureMessage]:
    stranger = new_signer()
    register_keys(world.server.tenant("other"), [stranger])
    return messages(world.submission(signers=[stranger]))


def _below_threshold(world: World) -> list[pb.ErasureMessage]:
    world.client.set_threshold(2, signers=world.signers[:1])
    return messages(world.submission(signers=world.signers[:1]))


def _revoked_key(world: World) -> list[pb.ErasureMessage]:
    world.client.revoke_key(world.signers[0].public_key.keyid, signers=world.signers[1:])
    return messages(world.submission(signers=world.signers[:1]))


def _tampered_payload(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    envelope = parse_envelope(sub.envelope)
    envelope.payload = envelope.payload.replace(b'"count":2', b'"count":1')
    return messages(sub, envelope=envelope_to_bytes(envelope))


def _tampered_delta(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    delta = synthetic_delta(_head(world), seed=1)
    return messages(sub, delta=encode_tensors(delta))


def _replayed(world: World) -> list[pb.ErasureMessage]:
    sent = messages(world.submission())
    world.extra["first"] = world.raw_submit(sent)
    return sent


def _same_id_other_payload(world: World) -> list[pb.ErasureMessage]:
    first = world.submission()
    world.raw_submit(messages(first))
    return messages(world.submission(request_id=first.manifest.request_id))


def _stale_parent(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    versions = world.client.versions(ADAPTER)
    return messages(world.submission(parent_version=1, parent_hash=versions[0].blob_sha256,
                                     result_hash=sub.manifest.result_hash))


def _wrong_parent_hash(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(parent_hash=sha256(b"another adapter")))


def _wrong_base(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(base_fingerprint=sha256(b"another base")))


def _expired(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(now=time.time() - 7200))


def _from_the_future(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(now=time.time() + 3600))


def _poisoned(value: float) -> Callable[[World], list[pb.ErasureMessage]]:
    def build(world: World) -> list[pb.ErasureMessage]:
        delta = synthetic_delta(_head(world))
        name = sorted(delta)[0]
        delta[name][0, 0] = value
        return messages(world.submission(delta=delta))

    return build


def _reshaped(change: str) -> Callable[[World], list[pb.ErasureMessage]]:
    def build(world: World) -> list[pb.ErasureMessage]:
        delta = synthetic_delta(_head(world))
        name = sorted(delta)[0]
        if change == "shape":
            delta[name] = delta[name].T.contiguous()
        elif change == "extra":
            delta["base_model.model.extra.lora_A.weight"] = torch.ones(4, 4)
        elif change == "missing":
            del delta[name]
        elif change == "dtype":
            delta = {k: v.half() for k, v in delta.items()}  # float64 would already be too large
        return messages(world.submission(delta=delta))

    return build


def _oversized_stream(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    sent = messages(sub)
    return sent + [pb.ErasureMessage(chunk=b"\0" * 16)]


def _oversized_declaration(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    return messages(sub, delta_size=world.schema.max_blob_bytes() + 1)[:1]


def _oversized_chunk(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(), chunk=1)[:1] + [pb.ErasureMessage(chunk=b"\0" * (MAX_CHUNK_BYTES + 1))]


def _oversized_envelope(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(), envelope=b"{" + b" " * (64 * 1024 + 1) + b"}")


def _truncated(world: World) -> list[pb.ErasureMessage]:
    sub = world.submission()
    return messages(sub, delta=sub.delta, chunk=1024)[:-1]


def _scaled(ratio: float) -> Callable[[World], list[pb.ErasureMessage]]:
    def build(world: World) -> list[pb.ErasureMessage]:
        return messages(world.submission(delta=synthetic_delta(_head(world), ratio=ratio)))

    return build


def _all_zero(world: World) -> list[pb.ErasureMessage]:
    # head + 0 would hash like the parent, which the manifest itself refuses: claim another result
    delta = {k: torch.zeros_like(v) for k, v in _head(world).items()}
    return messages(world.submission(delta=delta, result_hash=sha256(b"claimed result")))


def _result_mismatch(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(result_hash=sha256(b"some other result")))


def _malformed_envelope(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission(), envelope=b"this is not a DSSE envelope")


def _below_floor(world: World) -> list[pb.ErasureMessage]:
    old = world.client.versions(ADAPTER)[-1]
    world.raw_submit(_valid(world))
    world.client.upload_tensors(ADAPTER, _head(world))
    return messages(world.submission(parent_version=old.number, parent_hash=old.blob_sha256))


def _other_tenants_adapter(world: World) -> list[pb.ErasureMessage]:
    world.server.tenant("other")
    return messages(world.submission(), tenant="other")


def _manifest_for_another_adapter(world: World) -> list[pb.ErasureMessage]:
    world.client.create_adapter("second", world.schema)
    world.client.upload_tensors("second", _head(world))
    return messages(world.submission(), adapter="second")


def _chunk_first(world: World) -> list[pb.ErasureMessage]:
    return messages(world.submission())[1:]


def _not_safetensors(world: World) -> list[pb.ErasureMessage]:
    junk = b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}" + b"\0" * 64
    return messages(world.submission(delta_bytes=junk))


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[World], list[pb.ErasureMessage]]
    code: grpc.StatusCode | None  # None: accepted (the replay)
    detail: str  # a fragment of the refusal's message: the check that was meant to fire did


CASES = [
    Case("bad-signature", _bad_signature, Code.UNAUTHENTICATED, "signed by 0 of 1"),
    Case("unknown-key", _unknown_key, Code.UNAUTHENTICATED, "signed by 0 of 1"),
    Case("key-of-another-tenant", _key_of_another_tenant, Code.UNAUTHENTICATED, "signed by 0 of 1"),
    Case("below-threshold", _below_threshold, Code.UNAUTHENTICATED, "signed by 1 of 2"),
    Case("revoked-key", _revoked_key, Code.UNAUTHENTICATED, "signed by 0 of 1"),
    Case("tampered-payload", _tampered_payload, Code.UNAUTHENTICATED, "signed by 0 of 1"),
    Case("tampered-delta", _tampered_delta, Code.INVALID_ARGUMENT, "header announces delta"),
    Case("replayed-request", _replayed, None, ""),
    Case("same-id-other-payload", _same_id_other_payload, Code.ALREADY_EXISTS, "already used"),
    Case("stale-parent", _stale_parent, Code.ABORTED, "is not the head"),
    Case("wrong-parent-hash", _wrong_parent_hash, Code.FAILED_PRECONDITION, "has blob"),
    Case("wrong-base-fingerprint", _wrong_base, Code.FAILED_PRECONDITION, "binds base"),
    Case("expired", _expired, Code.INVALID_ARGUMENT, "expired"),
    Case("issued-in-the-future", _from_the_future, Code.INVALID_ARGUMENT, "in the future"),
    Case("nan", _poisoned(float("nan")), Code.INVALID_ARGUMENT, "NaN or infinite"),
    Case("inf", _poisoned(float("inf")), Code.INVALID_ARGUMENT, "NaN or infinite"),
    Case("wrong-shape", _reshaped("shape"), Code.INVALID_ARGUMENT, "has shape"),
    Case("extra-tensor", _reshaped("extra"), Code.INVALID_ARGUMENT, "does not name"),
    Case("missing-tensor", _reshaped("missing"), Code.INVALID_ARGUMENT, "is missing tensor"),
    Case("wrong-dtype", _reshaped("dtype"), Code.INVALID_ARGUMENT, "dtype torch.float16"),
    Case("oversized-stream", _oversized_stream, Code.RESOURCE_EXHAUSTED, "more than the"),
    Case("oversized-declared-size", _oversized_declaration, Code.RESOURCE_EXHAUSTED, "exceeds"),
    Case("oversized-chunk", _oversized_chunk, Code.RESOURCE_EXHAUSTED, "chunk of"),
    Case("oversized-envelope", _oversized_envelope, Code.RESOURCE_EXHAUSTED, "envelope is"),
    Case("truncated-stream", _truncated, Code.INVALID_ARGUMENT, "truncated"),
    Case("norm-bomb", _scaled(50.0), Code.INVALID_ARGUMENT, "at most 1.0"),
    Case("all-zero-delta", _all_zero, Code.INVALID_ARGUMENT, "all zeros"),
    Case("result-hash-mismatch", _result_mismatch, Code.INVALID_ARGUMENT, "signs result"),
    Case("malformed-envelope", _malformed_envelope, Code.INVALID_ARGUMENT, "envelope"),
    Case("not-safetensors", _not_safetensors, Code.INVALID_ARGUMENT, "safetensors"),
    Case("erasure-below-the-floor", _below_floor, Code.ABORTED, "below the erasure floor"),
    Case("other-tenants-adapter", _other_tenants_adapter, Code.NOT_FOUND, "not found"),
    Case("manifest-for-another-adapter", _manifest_for_another_adapter, Code.INVALID_ARGUMENT, "the manifest is for"),
    Case("chunk-before-header", _chunk_first, Code.INVALID_ARGUMENT, "must start with a header"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_submission_is_refused_and_changes_nothing(erasure_server, case):
    world = make_world(erasure_server)
    sent = case.build(world)
    before = vault_state(erasure_server)
    if case.code is None:
        assert world.raw_submit(sent) == world.extra["first"]
    else:
        with pytest.raises(grpc.RpcError) as caught:
            world.raw_submit(sent)
        assert caught.value.code() == case.code, caught.value.details()
        assert case.detail in caught.value.details()
    assert vault_state(erasure_server) == before
