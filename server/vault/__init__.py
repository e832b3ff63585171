"""The vault: tenants, tokens, signing keys, adapters and their versions, over SQL metadata and blob files.

Everything other parts use is named here; the modules behind it are private to the vault.
"""

from .blobs import BlobReader, BlobWriter, StagedBlob
from .records import (
    AdapterRecord,
    DeleteResult,
    FsckReport,
    IssuedToken,
    KeyRecord,
    Principal,
    Role,
    SigningPolicy,
    TenantRecord,
    TokenRecord,
    VersionKind,
    VersionRecord,
)
from .vault import Vault

__all__ = [
    "AdapterRecord",
    "BlobReader",
    "BlobWriter",
    "DeleteResult",
    "FsckReport",
    "IssuedToken",
    "KeyRecord",
    "Principal",
    "Role",
    "SigningPolicy",
    "StagedBlob",
    "TenantRecord",
    "TokenRecord",
    "Vault",
    "VersionKind",
    "VersionRecord",
]
