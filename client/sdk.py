"""The tenant and admin SDK: `VaultClient`, a context manager over one gRPC channel.

    >>> with VaultClient("127.0.0.1:50051", token=token) as vault:
    ...     vault.upload("support", peft_model)          # creates the adapter on first upload
    ...     model = vault.load_peft("support", base_model)

Every failure raises a loravault.core.errors class mapped from the status code (NotFoundError,
AbortedError, ...), never a bare grpc.RpcError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import torch
from securesystemslib.signer import Signer

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import DataLossError, InvalidArgumentError, NotFoundError
from loravault.core.schema_wire import schema_to_pb
from loravault.core.tensor_stream import StreamingTensorCheck
from loravault.core.tensor_views import Buffer, tensors_from_buffer, writable_buffer
from loravault.core.tensors import encode_tensors
from loravault.proto import ERASURE_CHUNKS, MAX_CHUNK_BYTES, UPLOAD_CHUNKS
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.proto.keys import key_id

from .errors import from_rpc_error
from .inference import Generation, ScoreResult, model_ref, sampling_params, score_result
from .key_changes import rotation_envelope
from .records import AdapterInfo, FsckResult, Identity, IssuedToken, KeyInfo, VersionInfo
from .rounds import RoundInfo
from .streams import FramedStreams

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

__all__ = ["VaultClient", "CHUNK_BYTES"]

CHUNK_BYTES = MAX_CHUNK_BYTES  # the wire contract's bound on one chunk
T = TypeVar("T")


class VaultClient:
    """One connection to a loravault server, authenticated by a bearer token.

    `tenant` arguments may be left empty by a tenant (it acts on itself); an admin names the tenant.
    TLS: pass `root_certificates` (PEM bytes); for mTLS also `private_key` and `certificate_chain`.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str,
        timeout: float = 60.0,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
    ) -> None:
        options = [("grpc.max_receive_message_length", 4 * CHUNK_BYTES),
                   ("grpc.max_send_message_length", 4 * CHUNK_BYTES)]
        if root_certificates is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._admin = pb_grpc.AdminStub(self._channel)
        self._tenants = pb_grpc.TenantsStub(self._channel)
        self._adapters = pb_grpc.AdaptersStub(self._channel)
        self._inference = pb_grpc.InferenceStub(self._channel)
        self._streams = FramedStreams.on(self._channel)

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., T], request: Any, **kwargs: Any) -> T:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout, **kwargs)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # ------------------------------------------------------------ identity and admin

    def whoami(self) -> Identity:
        r = self._call(self._tenants.WhoAmI, pb.WhoAmIRequest())
        return Identity(r.role, r.tenant, r.base_name, r.base_fingerprint, r.max_chunk_bytes)

    def create_tenant(self, name: str) -> str:
        return self._call(self._admin.CreateTenant, pb.CreateTenantRequest(name=name)).name

    def list_tenants(self) -> list[str]:
        return [t.name for t in self._call(self._admin.ListTenants, pb.ListTenantsRequest()).tenants]

    def delete_tenant(self, name: str) -> int:
        """Delete a tenant with its adapters, tokens and keys; returns how many blobs were purged."""
        return self._call(self._admin.DeleteTenant, pb.DeleteTenantRequest(name=name)).purged_blobs

    def fsck(self, *, repair: bool = False) -> FsckResult:
        r = self._call(self._admin.Fsck, pb.FsckRequest(repair=repair))
        return FsckResult(r.checked_versions, tuple(r.missing), tuple(r.corrupt), tuple(r.orphans),
                          tuple(r.temp_files), r.repaired, r.clean)

    # ------------------------------------------------------------ tokens and keys

    def issue_token(self, *, tenant: str = "", label: str = "") -> IssuedToken:
        r = self._call(self._tenants.IssueToken, pb.IssueTokenRequest(tenant=tenant, label=label))
        return IssuedToken(r.token_id, r.token)

    def revoke_token(self, token_id: str, *, tenant: str = "") -> None:
        self._call(self._tenants.RevokeToken, pb.RevokeTokenRequest(tenant=tenant, token_id=token_id))

    def list_tokens(self, *, tenant: str = "") -> list[pb.TokenInfo]:
        return list(self._call(self._tenants.ListTokens, pb.ListTokensRequest(tenant=tenant)).tokens)

    def add_key(self, public_key: dict, *, signers: Sequence[Signer] = (), tenant: str = "") -> KeyInfo:
        """Register a signing key.

        A tenant's first key needs only its token (trust on first use), as does any change by an admin. Once the
        tenant has keys, pass `signers` (a threshold of its current keys): the key is then added by a signed
        rotation that keeps the threshold. PermissionDeniedError when a tenant holding keys sends no signers.
        """
        if signers:
            keys, threshold = self._rotate(tenant, signers, add=public_key)
            return next(k for k in keys if k.keyid == key_id(public_key))
        request = pb.AddKeyRequest(tenant=tenant, public_key_json=json.dumps(public_key, sort_keys=True))
        r = self._call(self._tenants.AddKey, request)
        return KeyInfo(r.keyid, r.public_key_json, r.status)

    def list_keys(self, *, tenant: str = "") -> tuple[list[KeyInfo], int]:
        r = self._call(self._tenants.ListKeys, pb.ListKeysRequest(tenant=tenant))
        return [KeyInfo(k.keyid, k.public_key_json, k.status) for k in r.keys], r.threshold

    def revoke_key(self, keyid: str, *, signers: Sequence[Signer] = (), threshold: int | None = None,
                   tenant: str = "") -> KeyInfo:
        """Revoke a key: with `signers`, by a rotation signed by a threshold of the current keys (the key being
        revoked need not sign, so the others can revoke a compromised one), setting `threshold` if given;
        without, only as an admin."""
        if signers:
            keys, _ = self._rotate(tenant, signers, revoke=keyid, threshold=threshold)
            return next(k for k in keys if k.keyid == keyid)
        r = self._call(self._tenants.RevokeKey, pb.RevokeKeyRequest(tenant=tenant, keyid=keyid))
        return KeyInfo(r.keyid, r.public_key_json, r.status)

    def set_threshold(self, threshold: int, *, signers: Sequence[Signer] = (), tenant: str = "") -> int:
        """Set how many keys must sign: with `signers`, by a signed rotation; without, only as an admin."""
        if signers:
            return self._rotate(tenant, signers, threshold=threshold)[1]
        return self._call(self._tenants.SetThreshold, pb.SetThresholdRequest(tenant=tenant, threshold=threshold)).threshold

    def _rotate(self, tenant: str, signers: Sequence[Signer], *, add: dict | None = None, revoke: str = "",
                threshold: int | None = None) -> tuple[list[KeyInfo], int]:
        """One signed rotation from the current active keys: plus `add`, minus `revoke`, with `threshold`."""
        keys, current = self.list_keys(tenant=tenant)
        active = [json.loads(k.public_key_json) for k in keys if k.status == "active"]
        wanted = [k for k in active if key_id(k) != revoke] + ([add] if add is not None else [])
        envelope = rotation_envelope(tenant=tenant or self.whoami().tenant, active=active, keys=wanted,
                                     threshold=current if threshold is None else threshold, signers=signers)
        return self.rotate_keys(envelope, tenant=tenant)

    # ------------------------------------------------------------ adapters

    def create_adapter(self, name: str, schema: AdapterSchema, *, tenant: str = "") -> AdapterInfo:
        request = pb.CreateAdapterRequest(ref=_ref(tenant, name), schema=schema_to_pb(schema))
        return AdapterInfo.from_pb(self._call(self._adapters.CreateAdapter, request))

    def get_adapter(self, name: str, *, tenant: str = "") -> AdapterInfo:
        return AdapterInfo.from_pb(self._call(self._adapters.GetAdapter, pb.GetAdapterRequest(ref=_ref(tenant, name))))

    def list_adapters(self, *, tenant: str = "") -> list[AdapterInfo]:
        r = self._call(self._adapters.ListAdapters, pb.ListAdaptersRequest(tenant=tenant))
        return [AdapterInfo.from_pb(a) for a in r.adapters]

    def versions(self, name: str, *, tenant: str = "", after: int = 0, limit: int = 0) -> list[VersionInfo]:
        request = pb.ListVersionsRequest(ref=_ref(tenant, name), after=after, limit=limit)
        return [VersionInfo.from_pb(v) for v in self._call(self._adapters.ListVersions, request).versions]

    def delete_adapter(self, name: str, *, tenant: str = "") -> int:
        return self._call(self._adapters.DeleteAdapter, pb.DeleteAdapterRequest(ref=_ref(tenant, name))).purged_blobs

    def upload_tensors(
        self, name: str, tensors: dict[str, torch.Tensor], *, parent_version: int | None = None, tenant: str = ""
    ) -> VersionInfo:
        """Upload one version; `parent_version` defaults to the current head (compare-and-swap on it)."""
        return self.upload_bytes(name, encode_tensors(tensors), parent_version=parent_version, tenant=tenant)

    def upload_bytes(
        self, name: str, data: bytes, *, parent_version: int | None = None, schema: AdapterSchema | None = None,
        tenant: str = "",
    ) -> VersionInfo:
        """Stream safetensors bytes in chunks of at most 1 MiB, hashing as they go; the server checks both.

        With `schema`, an adapter that does not exist yet is created with the version, in one step on the
        server (parent_version 0), and an existing one must have that schema.
        """
        if parent_version is None:
            parent_version = self.get_adapter(name, tenant=tenant).head_version
        header = pb.UploadHeader(ref=_ref(tenant, name), parent_version=parent_version, total_size=len(data),
                                 schema=schema_to_pb(schema) if schema is not None else None)
        return VersionInfo.from_pb(self._call(self._streams.upload, _upload_stream(header, data)))

    def upload(self, name: str, source: PeftModel | Path | str, *, tenant: str = "") -> VersionInfo:
        """Upload a PeftModel's active LoRA adapter or a PEFT folder, creating the adapter on first upload.

        A PeftModel is bound to the fingerprint of the base weights under it; a folder to the one its
        loravault.json names, and a bare PEFT folder to the server's base, which the server's check of every
        tensor against its base model then decides. Raises FailedPreconditionError when the adapter does not
        fit the server's base, InvalidArgumentError naming a LoraConfig field the vault cannot keep.
        """
        from loravault.core.peft_format import (  # NOTE: see _peft_format
            adapter_from_peft_model,
            peft_base_fingerprint,
            read_peft_folder,
        )

        if not isinstance(source, (str, Path)):
            schema, tensors = adapter_from_peft_model(source, base_fingerprint=peft_base_fingerprint(source))
        else:
            schema, tensors = read_peft_folder(Path(source), base_fingerprint=self.whoami().base_fingerprint)
        try:
            head = self.get_adapter(name, tenant=tenant).head_version
        except NotFoundError:
            head = 0
        return self.upload_bytes(name, encode_tensors(tensors), parent_version=head, schema=schema, tenant=tenant)

    def download_tensors(
        self, name: str, *, version: int = 0, tenant: str = ""
    ) -> tuple[AdapterInfo, VersionInfo, dict[str, torch.Tensor]]:
        """Download a version (0 = head) and check its bytes against the version's recorded digest."""
        request = pb.DownloadRequest(ref=_ref(tenant, name), version=version)
        try:
            stream: Iterator[pb.DownloadMessage | memoryview] = self._streams.download(
                request, metadata=self._metadata, timeout=self._timeout)
            first = next(stream)
            if not isinstance(first, pb.DownloadMessage) or first.WhichOneof("part") != "header":
                raise DataLossError(f"download of {name} did not start with its header")
            info, found = AdapterInfo.from_pb(first.header.adapter), VersionInfo.from_pb(first.header.version)
            what = f"download of {name} v{found.number}"
            if found.size > info.schema.max_blob_bytes():  # the buffer is allocated before a byte arrives
                raise DataLossError(f"{what} declares {found.size} bytes, more than its schema allows "
                                    f"({info.schema.max_blob_bytes()})")
            check = StreamingTensorCheck(info.schema, what=what)
            data, received = _receive_blob(stream, size=found.size, what=what, check=check)
            if received != found.blob_sha256:
                raise DataLossError(f"{what} does not match its recorded digest")
            return info, found, tensors_from_buffer(data, info.schema, what=what, fed=check)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        except InvalidArgumentError as error:  # the bytes are not the adapter they claim (the check's errors)
            raise DataLossError(f"{what} is not a valid adapter: {error}") from error

    def download(self, name: str, folder: Path | str, *, version: int = 0, tenant: str = "") -> VersionInfo:
        """Export a version as a PEFT folder (adapter_config.json + adapter_model.safetensors)."""
        from loravault.core.peft_format import write_peft_folder  # NOTE: see _peft_format

        info, found, tensors = self.download_tensors(name, version=version, tenant=tenant)
        write_peft_folder(Path(folder), info.schema, tensors, base_name=self.whoami().base_name)
        return found

    def load_peft(self, name: str, base_model: PreTrainedModel, *, version: int = 0, tenant: str = "") -> PeftModel:
        """Download a version straight into a PeftModel over `base_model` (which peft modifies in place)."""
        from loravault.core.peft_format import peft_model_with_adapter  # NOTE: see _peft_format

        info, _, tensors = self.download_tensors(name, version=version, tenant=tenant)
        return peft_model_with_adapter(base_model, info.schema, tensors)

    def rollback(self, name: str, to_version: int, *, parent_version: int | None = None, tenant: str = "") -> VersionInfo:
        """Make a new head that points at an older version's bytes (never below the erasure floor)."""
        if parent_version is None:
            parent_version = self.get_adapter(name, tenant=tenant).head_version
        request = pb.RollbackRequest(ref=_ref(tenant, name), to_version=to_version, parent_version=parent_version)
        return VersionInfo.from_pb(self._call(self._adapters.Rollback, request))

    # ------------------------------------------------------------ signed erasure, keys, audit

    def submit_erasure(self, name: str, *, envelope: bytes, delta: bytes, tenant: str = "") -> pb.ErasureReceipt:
        """Send a signed erasure manifest (DSSE envelope bytes) and its delta's safetensors bytes.

        Returns the server-signed receipt, the new version and its audit log index; the same envelope sent
        again returns the stored receipt. Check the receipt with loravault.proto.verify_receipt.
        """
        header = pb.ErasureHeader(ref=_ref(tenant, name), envelope=envelope, delta_size=len(delta),
                                  delta_sha256=hashlib.sha256(delta).hexdigest())
        view = memoryview(delta)
        messages: list[pb.ErasureMessage | bytes] = [pb.ErasureMessage(header=header)]
        messages += [ERASURE_CHUNKS.encode(view[i : i + CHUNK_BYTES]) for i in range(0, len(delta), CHUNK_BYTES)]
        return self._call(self._streams.submit, iter(messages))

    def get_receipt(self, name: str, request_id: str, *, tenant: str = "") -> pb.ErasureReceipt:
        """The receipt of a committed erasure request of this adapter (NotFoundError if none)."""
        request = pb.GetReceiptRequest(ref=_ref(tenant, name), request_id=request_id)
        return self._call(pb_grpc.ErasureStub(self._channel).GetReceipt, request)

    def server_key(self) -> dict:
        """The server's Ed25519 public key (securesystemslib form), which signs receipts and checkpoints."""
        found = self._call(pb_grpc.ErasureStub(self._channel).GetServerKey, pb.GetServerKeyRequest())
        return json.loads(found.public_key_json)

    def rotate_keys(self, envelope: bytes, *, tenant: str = "") -> tuple[list[KeyInfo], int]:
        """Replace the signing keys and threshold by a rotation signed by a threshold of the current keys."""
        r = self._call(self._tenants.RotateKeys, pb.RotateKeysRequest(tenant=tenant, envelope=envelope))
        return [KeyInfo(k.keyid, k.public_key_json, k.status) for k in r.keys], r.threshold

    # ------------------------------------------------------------ federation rounds

    def commit_round(self, name: str, *, envelope: bytes, aggregate: bytes, tenant: str = "") -> pb.RoundReceipt:
        """Commit a federation round: the coordinator's signed round manifest and the aggregate's bytes.

        Returns the server-signed receipt (check it with loravault.proto.federation.verify_round_receipt).
        """
        header = pb.RoundHeader(ref=_ref(tenant, name), envelope=envelope, aggregate_size=len(aggregate),
                                aggregate_sha256=hashlib.sha256(aggregate).hexdigest())
        messages = [pb.RoundMessage(header=header)] + [
            pb.RoundMessage(chunk=aggregate[i : i + CHUNK_BYTES]) for i in range(0, len(aggregate), CHUNK_BYTES)]
        return self._call(pb_grpc.FederationStub(self._channel).CommitRound, iter(messages))

    def rounds(self, name: str, *, tenant: str = "", after: int = 0) -> list[RoundInfo]:
        """The adapter's federation rounds with their signed provenance, oldest first."""
        request = pb.ListRoundsRequest(ref=_ref(tenant, name), after=after)
        found = self._call(pb_grpc.FederationStub(self._channel).ListRounds, request)
        return [RoundInfo.from_pb(r) for r in found.rounds]

    def stream_audit_log(self, *, from_index: int = 0) -> Iterator[pb.AuditEntry]:
        """Every audit log entry from `from_index` on (admin only)."""
        try:
            yield from self._admin.StreamAuditLog(pb.StreamAuditLogRequest(from_index=from_index),
                                                  metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # ------------------------------------------------------------ inference

    def generate(self, adapter: str | None, prompt: str, *, version: int = 0, max_new_tokens: int = 0,
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                 stop: tuple[str, ...] = (), tenant: str = "") -> Generation:
        """Stream a completion as text deltas (see client/inference.py); adapter None = the base model alone.

        version 0 is the head; max_new_tokens 0 is the server's default; temperature 0 is greedy.
        """
        request = pb.GenerateRequest(model=model_ref(adapter, version=version, tenant=tenant), prompt=prompt,
                                     sampling=sampling_params(max_new_tokens=max_new_tokens, temperature=temperature,
                                                              top_p=top_p, top_k=top_k, seed=seed, stop=stop))
        return Generation(self._inference.Generate(request, metadata=self._metadata, timeout=self._timeout))

    def score(self, adapter: str | None, prompt: str, continuation: str, *, version: int = 0,
              tenant: str = "") -> ScoreResult:
        """Per-token log-probabilities and mean NLL of `continuation` after `prompt`."""
        request = pb.ScoreRequest(model=model_ref(adapter, version=version, tenant=tenant), prompt=prompt,
                                  continuation=continuation)
        return score_result(self._call(self._inference.Score, request))


# NOTE: _peft_format. The PEFT helpers are imported inside the methods that use them: importing peft takes 5 to
# 15 s on these machines, and a CLI call such as `loravault tenants list` must not pay for it.


def _ref(tenant: str, name: str) -> pb.AdapterRef:
    return pb.AdapterRef(tenant=tenant, adapter=name)


def _receive_blob(stream: Iterator[pb.DownloadMessage | memoryview], *, size: int, what: str,
                  check: StreamingTensorCheck) -> tuple[Buffer, str]:
    """The chunks after the header, copied once into a buffer of the recorded `size`, and their SHA-256; each
    chunk is fed to `check` as it arrives, so the values are checked while the server sends the next ones
    (after the last chunk, the check alone took 43 ms of a 64 MiB download's 227, profiled)."""
    data, digest, offset = writable_buffer(size), hashlib.sha256(), 0
    for message in stream:
        chunk = message if isinstance(message, memoryview) else message.chunk
        if offset + len(chunk) > size:
            raise DataLossError(f"{what} carries more than its recorded {size} bytes")
        data[offset : offset + len(chunk)] = chunk
        digest.update(chunk)
        check.feed(chunk)
        offset += len(chunk)
    if offset != size:
        raise DataLossError(f"{what} ended after {offset} of its recorded {size} bytes")
    return data, digest.hexdigest()


def _upload_stream(header: pb.UploadHeader, data: bytes) -> Iterator[pb.UploadMessage | bytes]:
    """Header, chunks (framed straight from `data`), then the trailer with the digest computed on the way."""
    yield pb.UploadMessage(header=header)
    digest, view = hashlib.sha256(), memoryview(data)
    for offset in range(0, len(data), CHUNK_BYTES):
        chunk = view[offset : offset + CHUNK_BYTES]
        digest.update(chunk)
        yield UPLOAD_CHUNKS.encode(chunk)
    yield pb.UploadMessage(trailer=pb.UploadTrailer(sha256=digest.hexdigest()))

