"""Step 2, `check_signatures` and `check_window`: the signed manifest, verified on its exact bytes.

Only the tenant's registered active keys count, at the tenant's threshold; a revoked key, another tenant's
key or an unknown one counts for nothing. loravault.proto's errors are part of the one error tree
(SignatureError is an UnauthenticatedError, ManifestError an InvalidArgumentError), so they pass to the edge as
they are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from loravault.core.errors import InvalidArgumentError
from loravault.proto.manifest import ErasureManifest, Windowed, verify_signed_manifest, verify_time_window

from ..vault import Vault
from .config import ErasureChecks
from .submission import ErasureHeader

__all__ = ["VerifiedManifest", "check_signatures", "check_window"]


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest whose signatures reached the tenant's threshold."""

    manifest: ErasureManifest
    manifest_hash: str  # SHA-256 of the envelope bytes as received: the idempotency fingerprint
    key_ids: tuple[str, ...]  # registered active keys listed in key_ids whose signatures verified


def check_signatures(header: ErasureHeader, *, vault: Vault) -> VerifiedManifest:
    """Verify the envelope against the tenant's active keys and threshold; the delta it announces must match.

    Raises UnauthenticatedError (too few valid signatures by registered active keys listed in key_ids),
    InvalidArgumentError (malformed envelope, invalid manifest, another tenant or adapter, or a header
    delta_sha256 other than the signed delta hash).
    """
    policy = vault.credentials.signing_policy(tenant=header.tenant)
    keys, threshold = policy.active_public_keys, policy.threshold
    signed = verify_signed_manifest(header.envelope, keys=keys, threshold=threshold, tenant=header.tenant,
                                    adapter=header.adapter)
    manifest = signed.manifest
    if header.delta_sha256 != manifest.delta_hash:
        raise InvalidArgumentError(
            f"{manifest.label}: the header announces delta {header.delta_sha256[:12]}…, the manifest signs "
            f"{manifest.delta_hash[:12]}…")
    return VerifiedManifest(manifest, hashlib.sha256(header.envelope).hexdigest(), signed.key_ids)


def check_window(manifest: Windowed, *, now: float, checks: ErasureChecks) -> None:
    """Refuse a manifest outside [issued_at - clock skew, expires_at) with InvalidArgumentError."""
    verify_time_window(manifest, now=now, clock_skew=checks.clock_skew_seconds)
