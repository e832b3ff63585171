"""What an erasure request carries before its delta arrives, and what a committed one answers."""

from __future__ import annotations

from dataclasses import dataclass
from ..vault import VersionRecord

__all__ = ["ErasureHeader", "ErasureResult"]


@dataclass(frozen=True)
class ErasureHeader:
    """The first message of Erasure.Submit, with the tenant resolved from the caller's token."""

    tenant: str
    adapter: str
    envelope: bytes  # the signed manifest, exactly as received
    delta_size: int  # bytes of the safetensors delta that follow
    delta_sha256: str  # what the client says they hash to


@dataclass(frozen=True)
class ErasureResult:
    """A committed erasure (new, or the stored one for a replayed request)."""

    receipt: bytes  # DSSE envelope signed by the server
    version: VersionRecord  # the new version
    log_index: int
    replayed: bool  # True when the same request had already committed and nothing new was done
