"""What the SDK returns: plain frozen records converted from the wire, so callers never touch protobuf."""

from __future__ import annotations

from dataclasses import dataclass

from loravault.core.adapter_schema import AdapterSchema
from loravault.core.schema_wire import schema_from_pb
from loravault.proto import loravault_pb2 as pb

__all__ = ["Identity", "AdapterInfo", "VersionInfo", "IssuedToken", "KeyInfo", "FsckResult"]


@dataclass(frozen=True)
class Identity:
    role: str
    tenant: str
    base_name: str
    base_fingerprint: str
    max_chunk_bytes: int


@dataclass(frozen=True)
class VersionInfo:
    number: int
    blob_sha256: str
    size: int
    parent: int
    kind: str
    manifest_hash: str
    created_unix_ms: int
    purged: bool

    @classmethod
    def from_pb(cls, m: pb.Version) -> VersionInfo:
        return cls(m.number, m.blob_sha256, m.size, m.parent, m.kind, m.manifest_hash, m.created_unix_ms, m.purged)


@dataclass(frozen=True)
class AdapterInfo:
    tenant: str
    name: str
    schema: AdapterSchema
    head_version: int
    erasure_floor: int
    created_unix_ms: int

    @classmethod
    def from_pb(cls, m: pb.Adapter) -> AdapterInfo:
        return cls(m.tenant, m.name, schema_from_pb(m.schema), m.head_version, m.erasure_floor, m.created_unix_ms)


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once


@dataclass(frozen=True)
class KeyInfo:
    keyid: str
    public_key_json: str
    status: str


@dataclass(frozen=True)
class FsckResult:
    checked_versions: int
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    orphans: tuple[str, ...]
    temp_files: tuple[str, ...]
    repaired: bool
    clean: bool
