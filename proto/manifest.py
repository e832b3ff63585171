"""The erasure manifest: what a tenant signs to ask the server to merge an erasure delta into its adapter.

The manifest is the predicate of an in-toto Statement (predicateType `urn:loravault:erasure:v1`) whose one
subject is the adapter version the erasure creates, `tenant/adapter@v<new_version>`, with the sha256 of its
merged float32 canonical bytes (`result_hash`). The predicate is the manifest's fields as JSON, under the
field names of the dataclasses below (`forget`, `method` and `window` as nested objects).

Times are integer Unix seconds (UTC): no time zones or leap-second spellings to parse, and exact comparison.
A manifest is valid in [issued_at, expires_at), a window of at most MAX_VALIDITY_SECONDS (24 h); the server
also accepts an issued_at up to a small clock skew in its future (`check_time_window`).

Every class here validates itself and raises ManifestError, whether its fields came from the tenant's own code
or from a parsed statement.

Example (client side, then server side):

    data = sign_manifest(manifest, signers=[signer])
    manifest = verify_manifest(data, keys=registered_keys, threshold=1, tenant="acme", adapter="support")
    verify_time_window(manifest, now=time.time())
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol

from securesystemslib.signer import Signer

from .digests import is_sha256_hex
from .envelope import KeyLike, parse_envelope, sign_statement, verify_signatures
from .errors import ManifestError, SignatureError, TimeWindowError
from .names import is_valid_name
from .statement import Statement, Subject

__all__ = [
    "ERASURE_PREDICATE_TYPE",
    "MAX_VALIDITY_SECONDS",
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "ErasureMethod",
    "ForgetSet",
    "ValidityWindow",
    "ErasureManifest",
    "TimeWindowCheck",
    "Windowed",
    "new_request_id",
    "subject_name",
    "check_time_window",
    "verify_time_window",
    "sign_manifest",
    "SignedManifest",
    "verify_manifest",
    "verify_signed_manifest",
]

ERASURE_PREDICATE_TYPE = "urn:loravault:erasure:v1"
MAX_VALIDITY_SECONDS = 24 * 3600
DEFAULT_CLOCK_SKEW_SECONDS = 300
MAX_KEY_IDS = 16

_LABEL = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")  # "+" joins parts, as in "gauss_newton+ekfac"
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_MAX_UNIX_SECONDS = 2**40  # year ~36800: anything later is a unit mistake (milliseconds)


def _require_name(value: Any, *, field_name: str) -> None:
    if not is_valid_name(value):
        raise ManifestError(f"{field_name} {str(value)[:80]!r} must be 1-64 of A-Z a-z 0-9 . _ - (alphanumeric first)")


def _require_hex64(value: Any, *, field_name: str) -> None:
    if not is_sha256_hex(value):
        raise ManifestError(f"{field_name} must be a SHA-256 digest as 64 lowercase hex characters")


def _require_int(value: Any, *, field_name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2**63 - 1:
        raise ManifestError(f"{field_name} must be an integer >= {minimum}, got {str(value)[:40]}")


def _require_time(value: Any, *, field_name: str) -> None:
    _require_int(value, field_name=field_name, minimum=0)
    if value > _MAX_UNIX_SECONDS:
        raise ManifestError(f"{field_name} {value} is not Unix seconds (milliseconds?)")


def _require_request_id(value: Any) -> None:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise ManifestError("request_id must be 128 random bits as 32 lowercase hex characters")


def _finite_nonnegative(value: Any, *, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"{field_name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ManifestError(f"{field_name} must be finite and >= 0, got {value}")
    return number


def new_request_id() -> str:
    """A fresh request id: 128 bits from the OS CSPRNG as 32 lowercase hex characters."""
    return secrets.token_hex(16)


def subject_name(*, tenant: str, adapter: str, version: int) -> str:
    """The in-toto subject name of an adapter version: `tenant/adapter@v<version>`."""
    return f"{tenant}/{adapter}@v{version}"


@dataclass(frozen=True)
class ErasureMethod:
    """How the client computed the delta, recorded so an auditor can judge it (not re-checked by the server)."""

    solver: str  # e.g. "cg", "lissa", "llmeraser"
    curvature: str  # e.g. "gauss-newton", "ekfac", "retained-gauss-newton"
    damping: float  # lambda in (H + lambda I)^-1 b, >= 0
    iterations: int  # solver iterations run, >= 0
    residual: float  # final relative residual of the solve, >= 0

    def __post_init__(self) -> None:
        for name in ("solver", "curvature"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _LABEL.fullmatch(value):
                raise ManifestError(f"method.{name} must be 1-64 of a-z 0-9 . _ + -")
        _require_int(self.iterations, field_name="method.iterations", minimum=0)
        # ints become floats so that the JSON spelling, and so the signed bytes, are the same either way
        object.__setattr__(self, "damping", _finite_nonnegative(self.damping, field_name="method.damping"))
        object.__setattr__(self, "residual", _finite_nonnegative(self.residual, field_name="method.residual"))


@dataclass(frozen=True)
class ForgetSet:
    """Which samples the erasure removes, as a commitment only (loravault.proto.commitment), and the set sizes.

    Removed samples leave the training set and corrected ones keep their slot, so the size after lies in
    [train_size_before - count, train_size_before].
    """

    commitment: str  # Merkle root, 64 lowercase hex
    count: int  # leaves under the root, >= 1
    train_size_before: int
    train_size_after: int

    def __post_init__(self) -> None:
        _require_hex64(self.commitment, field_name="forget.commitment")
        _require_int(self.count, field_name="forget.count", minimum=1)
        _require_int(self.train_size_before, field_name="forget.train_size_before", minimum=1)
        _require_int(self.train_size_after, field_name="forget.train_size_after", minimum=0)
        if self.count > self.train_size_before:
            raise ManifestError(f"forget.count {self.count} exceeds train_size_before {self.train_size_before}")
        low = self.train_size_before - self.count
        if not low <= self.train_size_after <= self.train_size_before:
            raise ManifestError(
                f"forget.train_size_after {self.train_size_after} must lie in [{low}, {self.train_size_before}] "
                f"(before {self.train_size_before}, {self.count} samples forgotten)"
            )


@dataclass(frozen=True)
class ValidityWindow:
    """When the manifest may be submitted: [issued_at, expires_at) in Unix seconds, at most 24 h long."""

    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        _require_time(self.issued_at, field_name="window.issued_at")
        _require_time(self.expires_at, field_name="window.expires_at")
        length = self.expires_at - self.issued_at
        if not 0 < length <= MAX_VALIDITY_SECONDS:
            raise ManifestError(
                f"window is {length} s (issued_at {self.issued_at}, expires_at {self.expires_at}); "
                f"it must be positive and at most {MAX_VALIDITY_SECONDS} s"
            )


@dataclass(frozen=True)
class ErasureManifest:
    """One erasure request, bound to the exact adapter version it applies to and the one it produces."""

    # who asks
    tenant: str
    adapter: str
    key_ids: tuple[str, ...]  # the tenant's keys meant to sign this manifest, sorted, distinct
    request_id: str  # 32 lowercase hex (new_request_id); the server's idempotency key
    # the vault state it applies to
    base_fingerprint: str  # SHA-256 of the base model's canonical weights
    parent_version: int  # the adapter's head when the delta was computed, >= 1
    parent_hash: str  # SHA-256 of the parent version's safetensors bytes
    # what it produces
    new_version: int  # parent_version + 1
    delta_hash: str  # SHA-256 of the delta's safetensors bytes
    result_hash: str  # SHA-256 of the merged adapter's canonical float32 bytes
    # what was forgotten, how, and when the request is valid
    forget: ForgetSet
    method: ErasureMethod
    window: ValidityWindow

    def __post_init__(self) -> None:
        _require_name(self.tenant, field_name="tenant")
        _require_name(self.adapter, field_name="adapter")
        self._check_key_ids()
        _require_request_id(self.request_id)
        for name in ("base_fingerprint", "parent_hash", "delta_hash", "result_hash"):
            _require_hex64(getattr(self, name), field_name=name)
        _require_int(self.parent_version, field_name="parent_version", minimum=1)
        _require_int(self.new_version, field_name="new_version", minimum=2)
        if self.new_version != self.parent_version + 1:
            raise ManifestError(f"new_version {self.new_version} must be parent_version {self.parent_version} + 1")
        if self.result_hash == self.parent_hash:
            raise ManifestError("result_hash equals parent_hash: the erasure would change nothing")
        for name, cls in (("forget", ForgetSet), ("method", ErasureMethod), ("window", ValidityWindow)):
            if not isinstance(getattr(self, name), cls):
                raise ManifestError(f"{name} must be a {cls.__name__}")

    def _check_key_ids(self) -> None:
        if not isinstance(self.key_ids, (list, tuple)) or not 0 < len(self.key_ids) <= MAX_KEY_IDS:
            raise ManifestError(f"key_ids must list 1 to {MAX_KEY_IDS} key ids")
        for key_id in self.key_ids:
            _require_hex64(key_id, field_name="each key id")
        if len(set(self.key_ids)) != len(self.key_ids):
            raise ManifestError("key_ids repeat a key id")
        object.__setattr__(self, "key_ids", tuple(sorted(self.key_ids)))

    @property
    def label(self) -> str:
        """How messages name this request: `adapter acme/support v8`."""
        return f"adapter {self.tenant}/{self.adapter} v{self.new_version}"

    def to_statement(self) -> Statement:
        """The in-toto Statement that carries this manifest (subject: the new adapter version)."""
        name = subject_name(tenant=self.tenant, adapter=self.adapter, version=self.new_version)
        return Statement(
            subject=(Subject(name=name, digest={"sha256": self.result_hash}),),
            predicate_type=ERASURE_PREDICATE_TYPE,
            predicate=_to_json(self),
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> ErasureManifest:
        """The manifest a Statement carries, refusing any unknown, missing or inconsistent field.

        The manifest must write back the very same statement, so one manifest has one signed byte string.

        Raises:
            ManifestError: wrong predicate type, fields missing or extra, invalid values, key ids not sorted,
                a float written as an integer, or a subject other than the new adapter version with
                sha256 = result_hash.
        """
        if statement.predicate_type != ERASURE_PREDICATE_TYPE:
            raise ManifestError(f"predicateType {statement.predicate_type[:80]!r} is not {ERASURE_PREDICATE_TYPE!r}")
        manifest = _from_json(cls, statement.to_dict()["predicate"], where="predicate")
        _require_same_statement(manifest.to_statement(), statement, digest_field="result_hash")
        return manifest


def _require_same_statement(expected: Statement, statement: Statement, *, digest_field: str) -> None:
    """Refuse a statement that its parsed object would not write back byte for byte."""
    if statement.subject != expected.subject:
        raise ManifestError(
            f"statement subject must be exactly [{expected.subject[0].name} with sha256 = {digest_field}]"
        )
    if statement.to_bytes() != expected.to_bytes():
        raise ManifestError(
            "predicate is not in canonical form: key_ids must be sorted and damping and residual written as "
            "floats (1.0, not 1)"
        )


def _to_json(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON values under its field names (nested dataclasses as objects, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            value = _to_json(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


_NESTED: dict[str, type] = {"forget": ForgetSet, "method": ErasureMethod, "window": ValidityWindow}


def _from_json(cls: type, data: Any, *, where: str) -> Any:
    """Build `cls` from a JSON object with exactly its field names; nested objects per _NESTED."""
    names = {f.name for f in fields(cls)}
    if not isinstance(data, dict) or set(data) != names:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ManifestError(f"{where} must have exactly the fields {sorted(names)}, found {found}")
    values = dict(data)
    for name, nested in _NESTED.items():
        if name in values:
            values[name] = _from_json(nested, values[name], where=f"{where}.{name}")
    if isinstance(values.get("key_ids"), list):
        values["key_ids"] = tuple(values["key_ids"])
    return cls(**values)


@dataclass(frozen=True)
class TimeWindowCheck:
    """The outcome of `check_time_window`: truthy inside the window, else falsy with the reason."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


class Windowed(Protocol):
    """What the time-window check reads: an erasure manifest, or a federation round's (proto/federation.py)."""

    @property
    def label(self) -> str: ...
    @property
    def window(self) -> ValidityWindow: ...


def check_time_window(
    manifest: Windowed, *, now: float, clock_skew: int = DEFAULT_CLOCK_SKEW_SECONDS
) -> TimeWindowCheck:
    """Whether `now` (Unix seconds) lies in the manifest's window, allowing `clock_skew` seconds before it."""
    window = manifest.window
    if now >= window.expires_at:
        return TimeWindowCheck(
            f"{manifest.label}: manifest expired at {window.expires_at}, {now - window.expires_at:.0f} s ago; "
            "sign a new one"
        )
    if now + clock_skew < window.issued_at:
        return TimeWindowCheck(
            f"{manifest.label}: manifest issued at {window.issued_at}, {window.issued_at - now:.0f} s in the "
            f"future (more than the {clock_skew} s clock skew allowed); check the client's clock"
        )
    return TimeWindowCheck()


def verify_time_window(
    manifest: Windowed, *, now: float, clock_skew: int = DEFAULT_CLOCK_SKEW_SECONDS
) -> None:
    """Like `check_time_window`, but raises.

    Raises:
        TimeWindowError: expired, or issued more than `clock_skew` seconds in the future.
    """
    result = check_time_window(manifest, now=now, clock_skew=clock_skew)
    if not result:
        raise TimeWindowError(result.reason)


def sign_manifest(manifest: ErasureManifest, *, signers: Sequence[Signer]) -> bytes:
    """The DSSE envelope bytes of the manifest's Statement, signed by each signer.

    Raises:
        ValueError: a signer's key id is not in manifest.key_ids, or as `sign_statement`.
    """
    unlisted = [s.public_key.keyid for s in signers if s.public_key.keyid not in manifest.key_ids]
    if unlisted:
        raise ValueError(f"signers {unlisted} are not in the manifest's key_ids; add them before signing")
    return sign_statement(manifest.to_statement(), signers=signers)


@dataclass(frozen=True)
class SignedManifest:
    """A verified manifest and the keys that carried it."""

    manifest: ErasureManifest
    key_ids: tuple[str, ...]  # registered keys, listed in the manifest's key_ids, whose signatures verified


def verify_manifest(
    data: bytes, *, keys: Iterable[KeyLike], threshold: int, tenant: str, adapter: str
) -> ErasureManifest:
    """Verify a signed erasure manifest against the tenant's registered keys and return the manifest.

    See `verify_signed_manifest`, which also says which keys counted.
    """
    return verify_signed_manifest(data, keys=keys, threshold=threshold, tenant=tenant, adapter=adapter).manifest


def verify_signed_manifest(
    data: bytes, *, keys: Iterable[KeyLike], threshold: int, tenant: str, adapter: str
) -> SignedManifest:
    """Verify a signed erasure manifest; the manifest and the registered keys whose signatures counted.

    The order matters: signatures are checked before the payload is parsed; then the manifest must name the
    `tenant` and `adapter` the request was made for; then only signatures by keys the manifest lists in
    key_ids count toward the threshold. Time window and request-id idempotency are the caller's next checks.

    Raises:
        MalformedEnvelopeError: the envelope or statement does not parse.
        SignatureError: fewer than `threshold` registered keys (listed in key_ids) signed.
        ManifestError: the manifest is invalid, or names another tenant or adapter.
    """
    label = f"adapter {tenant}/{adapter}"
    envelope = parse_envelope(data)
    accepted = verify_signatures(envelope, keys=keys, threshold=threshold, label=label)
    manifest = ErasureManifest.from_statement(Statement.from_bytes(envelope.payload))
    if (manifest.tenant, manifest.adapter) != (tenant, adapter):
        raise ManifestError(f"{label}: the manifest is for {manifest.tenant}/{manifest.adapter}")
    counted = tuple(sorted(set(accepted) & set(manifest.key_ids)))
    if len(counted) < threshold:
        raise SignatureError(
            f"{manifest.label}: signed by {len(counted)} of {threshold} required keys listed in key_ids"
        )
    return SignedManifest(manifest, counted)
