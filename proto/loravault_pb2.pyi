from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorSpec(_message.Message):
    __slots__ = ("name", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class AdapterSchema(_message.Message):
    __slots__ = ("rank", "alpha", "target_modules", "tensors", "dtype", "base_fingerprint", "use_rslora", "rank_pattern", "alpha_pattern", "peft_metadata")
    class RankPatternEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class AlphaPatternEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    BASE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    USE_RSLORA_FIELD_NUMBER: _ClassVar[int]
    RANK_PATTERN_FIELD_NUMBER: _ClassVar[int]
    ALPHA_PATTERN_FIELD_NUMBER: _ClassVar[int]
    PEFT_METADATA_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    dtype: str
    base_fingerprint: str
    use_rslora: bool
    rank_pattern: _containers.ScalarMap[str, int]
    alpha_pattern: _containers.ScalarMap[str, float]
    peft_metadata: str
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., tensors: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., dtype: _Optional[str] = ..., base_fingerprint: _Optional[str] = ..., use_rslora: _Optional[bool] = ..., rank_pattern: _Optional[_Mapping[str, int]] = ..., alpha_pattern: _Optional[_Mapping[str, float]] = ..., peft_metadata: _Optional[str] = ...) -> None: ...

class AdapterRef(_message.Message):
    __slots__ = ("tenant", "adapter")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    adapter: str
    def __init__(self, tenant: _Optional[str] = ..., adapter: _Optional[str] = ...) -> None: ...

class Adapter(_message.Message):
    __slots__ = ("tenant", "name", "schema", "head_version", "erasure_floor", "created_unix_ms")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    HEAD_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERASURE_FLOOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    schema: AdapterSchema
    head_version: int
    erasure_floor: int
    created_unix_ms: int
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., schema: _Optional[_Union[AdapterSchema, _Mapping]] = ..., head_version: _Optional[int] = ..., erasure_floor: _Optional[int] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("number", "blob_sha256", "size", "parent", "kind", "manifest_hash", "created_unix_ms", "purged")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOB_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PURGED_FIELD_NUMBER: _ClassVar[int]
    number: int
    blob_sha256: str
    size: int
    parent: int
    kind: str
    manifest_hash: str
    created_unix_ms: int
    purged: bool
    def __init__(self, number: _Optional[int] = ..., blob_sha256: _Optional[str] = ..., size: _Optional[int] = ..., parent: _Optional[int] = ..., kind: _Optional[str] = ..., manifest_hash: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., purged: _Optional[bool] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "created_unix_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    created_unix_ms: int
    def __init__(self, name: _Optional[str] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ...) -> None: ...

class DeleteTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTenantResponse(_message.Message):
    __slots__ = ("deleted_adapters", "purged_blobs")
    DELETED_ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    PURGED_BLOBS_FIELD_NUMBER: _ClassVar[int]
    deleted_adapters: int
    purged_blobs: int
    def __init__(self, deleted_adapters: _Optional[int] = ..., purged_blobs: _Optional[int] = ...) -> None: ...

class FsckRequest(_message.Message):
    __slots__ = ("repair",)
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    repair: bool
    def __init__(self, repair: _Optional[bool] = ...) -> None: ...

class FsckResponse(_message.Message):
    __slots__ = ("checked_versions", "missing", "corrupt", "orphans", "temp_files", "repaired", "clean")
    CHECKED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    ORPHANS_FIELD_NUMBER: _ClassVar[int]
    TEMP_FILES_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    CLEAN_FIELD_NUMBER: _ClassVar[int]
    checked_versions: int
    missing: _containers.RepeatedScalarFieldContainer[str]
    corrupt: _containers.RepeatedScalarFieldContainer[str]
    orphans: _containers.RepeatedScalarFieldContainer[str]
    temp_files: _containers.RepeatedScalarFieldContainer[str]
    repaired: bool
    clean: bool
    def __init__(self, checked_versions: _Optional[int] = ..., missing: _Optional[_Iterable[str]] = ..., corrupt: _Optional[_Iterable[str]] = ..., orphans: _Optional[_Iterable[str]] = ..., temp_files: _Optional[_Iterable[str]] = ..., repaired: _Optional[bool] = ..., clean: _Optional[bool] = ...) -> None: ...

class StreamAuditLogRequest(_message.Message):
    __slots__ = ("from_index",)
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    from_index: int
    def __init__(self, from_index: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("index", "entry_hash", "previous_hash", "body")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HASH_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    index: int
    entry_hash: str
    previous_hash: str
    body: bytes
    def __init__(self, index: _Optional[int] = ..., entry_hash: _Optional[str] = ..., previous_hash: _Optional[str] = ..., body: _Optional[bytes] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("role", "tenant", "base_name", "base_fingerprint", "max_chunk_bytes")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    BASE_NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    role: str
    tenant: str
    base_name: str
    base_fingerprint: str
    max_chunk_bytes: int
    def __init__(self, role: _Optional[str] = ..., tenant: _Optional[str] = ..., base_name: _Optional[str] = ..., base_fingerprint: _Optional[str] = ..., max_chunk_bytes: _Optional[int] = ...) -> None: ...

class IssueTokenRequest(_message.Message):
    __slots__ = ("tenant", "label")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    label: str
    def __init__(self, tenant: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class IssueTokenResponse(_message.Message):
    __slots__ = ("token_id", "token")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    token: str
    def __init__(self, token_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("tenant", "token_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    token_id: str
    def __init__(self, tenant: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("token_id", "role", "tenant", "label", "created_unix_ms", "revoked")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    role: str
    tenant: str
    label: str
    created_unix_ms: int
    revoked: bool
    def __init__(self, token_id: _Optional[str] = ..., role: _Optional[str] = ..., tenant: _Optional[str] = ..., label: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., revoked: _Optional[bool] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class SigningKey(_message.Message):
    __slots__ = ("keyid", "public_key_json", "status")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    public_key_json: str
    status: str
    def __init__(self, keyid: _Optional[str] = ..., public_key_json: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class AddKeyRequest(_message.Message):
    __slots__ = ("tenant", "public_key_json")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_JSON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    public_key_json: str
    def __init__(self, tenant: _Optional[str] = ..., public_key_json: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys", "threshold")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[SigningKey]
    threshold: int
    def __init__(self, keys: _Optional[_Iterable[_Union[SigningKey, _Mapping]]] = ..., threshold: _Optional[int] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("tenant", "keyid")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEYID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    keyid: str
    def __init__(self, tenant: _Optional[str] = ..., keyid: _Optional[str] = ...) -> None: ...

class SetThresholdRequest(_message.Message):
    __slots__ = ("tenant", "threshold")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    threshold: int
    def __init__(self, tenant: _Optional[str] = ..., threshold: _Optional[int] = ...) -> None: ...

class RotateKeysRequest(_message.Message):
    __slots__ = ("tenant", "envelope")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    envelope: bytes
    def __init__(self, tenant: _Optional[str] = ..., envelope: _Optional[bytes] = ...) -> None: ...

class CreateAdapterRequest(_message.Message):
    __slots__ = ("ref", "schema")
    REF_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    schema: AdapterSchema
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., schema: _Optional[_Union[AdapterSchema, _Mapping]] = ...) -> None: ...

class GetAdapterRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ...) -> None: ...

class ListAdaptersRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListAdaptersResponse(_message.Message):
    __slots__ = ("adapters",)
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    adapters: _containers.RepeatedCompositeFieldContainer[Adapter]
    def __init__(self, adapters: _Optional[_Iterable[_Union[Adapter, _Mapping]]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("ref", "after", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    after: int
    limit: int
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    def __init__(self, versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ...) -> None: ...

class DeleteAdapterRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ...) -> None: ...

class DeleteAdapterResponse(_message.Message):
    __slots__ = ("purged_blobs",)
    PURGED_BLOBS_FIELD_NUMBER: _ClassVar[int]
    purged_blobs: int
    def __init__(self, purged_blobs: _Optional[int] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("ref", "parent_version", "total_size", "schema")
    REF_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    parent_version: int
    total_size: int
    schema: AdapterSchema
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., parent_version: _Optional[int] = ..., total_size: _Optional[int] = ..., schema: _Optional[_Union[AdapterSchema, _Mapping]] = ...) -> None: ...

class UploadTrailer(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class UploadMessage(_message.Message):
    __slots__ = ("header", "chunk", "trailer")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    trailer: UploadTrailer
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., trailer: _Optional[_Union[UploadTrailer, _Mapping]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("ref", "version")
    REF_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    version: int
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class DownloadHeader(_message.Message):
    __slots__ = ("adapter", "version")
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    adapter: Adapter
    version: Version
    def __init__(self, adapter: _Optional[_Union[Adapter, _Mapping]] = ..., version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class DownloadMessage(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: DownloadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[DownloadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("ref", "to_version", "parent_version")
    REF_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    to_version: int
    parent_version: int
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., to_version: _Optional[int] = ..., parent_version: _Optional[int] = ...) -> None: ...

class ErasureHeader(_message.Message):
    __slots__ = ("ref", "envelope", "delta_size", "delta_sha256")
    REF_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    DELTA_SIZE_FIELD_NUMBER: _ClassVar[int]
    DELTA_SHA256_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    envelope: bytes
    delta_size: int
    delta_sha256: str
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., envelope: _Optional[bytes] = ..., delta_size: _Optional[int] = ..., delta_sha256: _Optional[str] = ...) -> None: ...

class ErasureMessage(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ErasureHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ErasureHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ErasureReceipt(_message.Message):
    __slots__ = ("envelope", "version", "log_index")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    version: Version
    log_index: int
    def __init__(self, envelope: _Optional[bytes] = ..., version: _Optional[_Union[Version, _Mapping]] = ..., log_index: _Optional[int] = ...) -> None: ...

class GetReceiptRequest(_message.Message):
    __slots__ = ("ref", "request_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    request_id: str
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetServerKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerKey(_message.Message):
    __slots__ = ("keyid", "public_key_json")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_JSON_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    public_key_json: str
    def __init__(self, keyid: _Optional[str] = ..., public_key_json: _Optional[str] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("ref", "version", "base_only")
    REF_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_ONLY_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    version: int
    base_only: bool
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., version: _Optional[int] = ..., base_only: _Optional[bool] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "seed", "max_new_tokens", "stop")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    seed: int
    max_new_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "sampling")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    model: ModelRef
    prompt: str
    sampling: SamplingParams
    def __init__(self, model: _Optional[_Union[ModelRef, _Mapping]] = ..., prompt: _Optional[str] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ...) -> None: ...

class GenerateDelta(_message.Message):
    __slots__ = ("text", "token_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GenerateDone(_message.Message):
    __slots__ = ("finish_reason", "prompt_tokens", "completion_tokens", "version", "text")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    version: int
    text: str
    def __init__(self, finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., version: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("delta", "done")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    delta: GenerateDelta
    done: GenerateDone
    def __init__(self, delta: _Optional[_Union[GenerateDelta, _Mapping]] = ..., done: _Optional[_Union[GenerateDone, _Mapping]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model", "prompt", "continuation")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    model: ModelRef
    prompt: str
    continuation: str
    def __init__(self, model: _Optional[_Union[ModelRef, _Mapping]] = ..., prompt: _Optional[str] = ..., continuation: _Optional[str] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("mean_nll", "token_logprobs", "token_ids", "version", "prompt_tokens")
    MEAN_NLL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    mean_nll: float
    token_logprobs: _containers.RepeatedScalarFieldContainer[float]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    version: int
    prompt_tokens: int
    def __init__(self, mean_nll: _Optional[float] = ..., token_logprobs: _Optional[_Iterable[float]] = ..., token_ids: _Optional[_Iterable[int]] = ..., version: _Optional[int] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class RoundHeader(_message.Message):
    __slots__ = ("ref", "envelope", "aggregate_size", "aggregate_sha256")
    REF_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    envelope: bytes
    aggregate_size: int
    aggregate_sha256: str
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., envelope: _Optional[bytes] = ..., aggregate_size: _Optional[int] = ..., aggregate_sha256: _Optional[str] = ...) -> None: ...

class RoundMessage(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: RoundHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[RoundHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class RoundReceipt(_message.Message):
    __slots__ = ("envelope", "version", "log_index")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    version: Version
    log_index: int
    def __init__(self, envelope: _Optional[bytes] = ..., version: _Optional[_Union[Version, _Mapping]] = ..., log_index: _Optional[int] = ...) -> None: ...

class ListRoundsRequest(_message.Message):
    __slots__ = ("ref", "after", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: AdapterRef
    after: int
    limit: int
    def __init__(self, ref: _Optional[_Union[AdapterRef, _Mapping]] = ..., after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class RoundProvenance(_message.Message):
    __slots__ = ("version", "manifest_hash", "envelope")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_HASH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    version: int
    manifest_hash: str
    envelope: bytes
    def __init__(self, version: _Optional[int] = ..., manifest_hash: _Optional[str] = ..., envelope: _Optional[bytes] = ...) -> None: ...

class ListRoundsResponse(_message.Message):
    __slots__ = ("rounds",)
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    rounds: _containers.RepeatedCompositeFieldContainer[RoundProvenance]
    def __init__(self, rounds: _Optional[_Iterable[_Union[RoundProvenance, _Mapping]]] = ...) -> None: ...
