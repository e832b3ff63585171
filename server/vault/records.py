"""The immutable records the vault hands out; callers never see database rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from loravault.core import AdapterSchema

__all__ = [
    "AdapterRecord",
    "DeleteResult",
    "FsckReport",
    "IssuedToken",
    "KeyRecord",
    "Principal",
    "Role",
    "TenantRecord",
    "TokenRecord",
    "VersionKind",
    "VersionRecord",
]

Role = Literal["admin", "tenant"]
VersionKind = Literal["upload", "erasure", "federation-round", "rollback"]


@dataclass(frozen=True)
class TenantRecord:
    name: str
    created_at: datetime  # UTC
    signing_threshold: int  # signatures required on an erasure manifest


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret is shown once here and stored only as its SHA-256."""

    token_id: str  # public handle, for listing and revoking
    secret: str  # the bearer value; never stored


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    role: Role
    tenant: str | None  # None for admin tokens
    label: str
    created_at: datetime  # UTC
    revoked_at: datetime | None  # UTC; None while the token is valid

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Principal:
    """Who a valid bearer secret speaks for."""

    role: Role
    tenant: str | None  # None for admin
    token_id: str


@dataclass(frozen=True)
class KeyRecord:
    keyid: str  # SHA-256 hex of the canonical JSON of public_key
    public_key: dict[str, Any]  # securesystemslib form: keytype, scheme, keyval.public
    status: Literal["active", "revoked"]
    created_at: datetime  # UTC


@dataclass(frozen=True)
class SigningPolicy:
    """A tenant's signing keys and threshold, as of one moment."""

    keys: list[KeyRecord]
    threshold: int  # how many active keys must sign

    @property
    def active_public_keys(self) -> list[dict[str, Any]]:
        return [k.public_key for k in self.keys if k.status == "active"]


@dataclass(frozen=True)
class AdapterRecord:
    tenant: str
    name: str
    schema: AdapterSchema
    head_version: int  # 0 until the first version commits
    floor: int  # erasure floor: versions below it are purged; 0 when no erasure has committed
    created_at: datetime  # UTC


@dataclass(frozen=True)
class VersionRecord:
    number: int  # 1, 2, 3, ...
    blob_sha256: str  # SHA-256 hex of the safetensors bytes; kept after a purge
    size: int  # bytes
    parent: int | None  # the head this version was committed on; None for version 1
    kind: VersionKind
    manifest_hash: str | None  # SHA-256 hex of the signed manifest, where one exists
    created_at: datetime  # UTC
    purged: bool  # its blob is gone (below the erasure floor); only the hash remains


@dataclass(frozen=True)
class DeleteResult:
    """What deleting a tenant or an adapter removed."""

    deleted_adapters: int
    deleted_versions: int
    purged_blobs: int  # blob files deleted (blobs another adapter still uses are kept)


@dataclass(frozen=True)
class FsckReport:
    """What fsck found (before any repair); `removed` says what repair then deleted.

    Repair removes orphans and stale temporary files only, never a blob a live version references.
    """

    checked_versions: int  # live (unpurged) versions whose blob was checked
    checked_blobs: int  # distinct blobs hashed
    missing: tuple[str, ...]  # digests a live version references that are absent
    corrupt: tuple[str, ...]  # digests whose file hashes to something else
    orphans: tuple[str, ...]  # blob files no live version references
    temp_files: tuple[str, ...]  # leftover temporary files, relative to the blob folder
    repaired: bool  # repair was asked for and orphans and temp files were removed
    removed: tuple[str, ...]  # what repair removed (digests and temp file names)

    @property
    def clean(self) -> bool:
        """True when nothing is missing, corrupt, orphaned or left over."""
        return not (self.missing or self.corrupt or self.orphans or self.temp_files)
