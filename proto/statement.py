"""in-toto v1 Statements: the payload every loravault DSSE envelope carries, in one canonical byte form.

A Statement names its subjects (artifacts and their digests), a predicate type and a predicate:

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "acme/support@v8", "digest": {"sha256": "<64 hex>"}}],
     "predicateType": "urn:loravault:erasure:v1",
     "predicate": {...}}

Canonical JSON here means: keys sorted, no whitespace, ASCII only (everything else \\u-escaped), no NaN or
infinity, each float written as Python's shortest round-trip repr. `Statement.from_bytes` accepts only bytes in
that form, so one statement has exactly one signed byte string: two payloads are the same request if and only
if their bytes are equal (the server's request-id idempotency compares bytes).

Example:

    >>> s = Statement(subject=(Subject(name="a/b@v2", digest={"sha256": "ab" * 32}),),
    ...               predicate_type="urn:example:v1", predicate={"n": 1})
    >>> Statement.from_bytes(s.to_bytes()) == s
    True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import MalformedEnvelopeError
from .untrusted_json import MAX_JSON_DEPTH, parse_json

__all__ = ["STATEMENT_TYPE", "Subject", "Statement", "canonical_json"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

# A statement's fields, exactly: "predicate" is optional in in-toto, but every loravault statement has one.
_STATEMENT_KEYS = frozenset({"_type", "subject", "predicateType", "predicate"})
_SUBJECT_KEYS = frozenset({"name", "digest"})
_HEX = re.compile(r"[0-9a-f]+")
_DIGEST_ALGORITHM = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_MAX_NAME_CHARS = 1024
_MAX_SUBJECTS = 64
_MAX_DEPTH = MAX_JSON_DEPTH
# a statement is an envelope's payload, which the envelope's own cap bounds already
_MAX_STATEMENT_BYTES = 64 * 1024


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of a JSON value (see the module docstring).

    Raises:
        ValueError: the value holds NaN or an infinity.
        TypeError: the value holds something JSON cannot represent.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _freeze(value: Any) -> Any:
    """A read-only copy of a JSON value: objects become mapping proxies, arrays tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """The plain JSON value of a frozen one (what json.dumps accepts)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _check_json_value(value: Any, *, where: str, depth: int = 0) -> None:
    """Refuse anything canonical_json could not write, so a valid Statement always serializes.

    The depth cap keeps the recursive helpers here far from Python's recursion limit.
    """
    if depth > _MAX_DEPTH:
        raise MalformedEnvelopeError(f"{where}: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedEnvelopeError(f"{where}: object key {key!r} is not a string")
            _check_json_value(item, where=f"{where}.{key[:64]}", depth=depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_value(item, where=f"{where}[{index}]", depth=depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedEnvelopeError(f"{where}: {value} is not a finite number")
    elif value is not None and not isinstance(value, (str, int)):  # bool is an int
        raise MalformedEnvelopeError(f"{where}: {type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class Subject:
    """One artifact a Statement is about: its name and at least one digest (algorithm -> lowercase hex)."""

    name: str
    digest: Mapping[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= _MAX_NAME_CHARS:
            raise MalformedEnvelopeError(f"subject name must be 1 to {_MAX_NAME_CHARS} characters")
        if not isinstance(self.digest, Mapping) or not self.digest:
            raise MalformedEnvelopeError(f"subject {self.name!r}: digest must be a non-empty object")
        for algorithm, value in self.digest.items():
            if not isinstance(algorithm, str) or not _DIGEST_ALGORITHM.fullmatch(algorithm):
                raise MalformedEnvelopeError(f"subject {self.name!r}: bad digest algorithm {algorithm!r}")
            size = _DIGEST_HEX_LENGTH.get(algorithm)
            if not isinstance(value, str) or not _HEX.fullmatch(value) or (size and len(value) != size):
                raise MalformedEnvelopeError(
                    f"subject {self.name!r}: {algorithm} digest must be lowercase hex"
                    + (f" of {size} characters" if size else "")
                )
        object.__setattr__(self, "digest", MappingProxyType(dict(self.digest)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """An in-toto v1 Statement, validated on construction; the predicate is a read-only copy.

    NOTE: `predicate` is a read-only view (mapping proxies and tuples); use `to_dict()` for plain JSON values.
    Construction raises MalformedEnvelopeError, whether the fields came from a parser or from local code.
    """

    subject: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        subjects = tuple(self.subject) if isinstance(self.subject, (list, tuple)) else None
        if not subjects or len(subjects) > _MAX_SUBJECTS:
            raise MalformedEnvelopeError(f"statement needs 1 to {_MAX_SUBJECTS} subjects")
        if not all(isinstance(s, Subject) for s in subjects):
            raise MalformedEnvelopeError("statement subjects must be Subject objects")
        if not isinstance(self.predicate_type, str) or not 0 < len(self.predicate_type) <= _MAX_NAME_CHARS:
            raise MalformedEnvelopeError(f"predicateType must be 1 to {_MAX_NAME_CHARS} characters")
        if not isinstance(self.predicate, Mapping):
            raise MalformedEnvelopeError("predicate must be a JSON object")
        _check_json_value(self.predicate, where="predicate")
        object.__setattr__(self, "subject", subjects)
        object.__setattr__(self, "predicate", _freeze(self.predicate))

    def to_dict(self) -> dict[str, Any]:
        """The Statement as plain JSON values, in the in-toto field names."""
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_dict() for s in self.subject],
            "predicateType": self.predicate_type,
            "predicate": _thaw(self.predicate),
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes: what a DSSE envelope signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Statement:
        """Build a Statement from parsed JSON, refusing unknown or missing fields.

        Raises:
            MalformedEnvelopeError: the value is not an in-toto v1 Statement.
        """
        if not isinstance(data, dict) or set(data) != _STATEMENT_KEYS:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise MalformedEnvelopeError(f"statement must have exactly the fields {sorted(_STATEMENT_KEYS)}, "
                                         f"found {found}")
        if data["_type"] != STATEMENT_TYPE:
            raise MalformedEnvelopeError(f"statement _type must be {STATEMENT_TYPE!r}")
        if not isinstance(data["subject"], list):
            raise MalformedEnvelopeError("statement subject must be a list")
        subjects = []
        for entry in data["subject"]:
            if not isinstance(entry, dict) or set(entry) != _SUBJECT_KEYS:
                raise MalformedEnvelopeError(f"each subject must have exactly the fields {sorted(_SUBJECT_KEYS)}")
            subjects.append(Subject(name=entry["name"], digest=entry["digest"]))
        return cls(subject=tuple(subjects), predicate_type=data["predicateType"], predicate=data["predicate"])

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        """Parse untrusted bytes that must be a Statement in canonical JSON.

        Raises:
            MalformedEnvelopeError: not JSON, not a Statement, or not in canonical form.
        """
        statement = cls.from_dict(parse_json(data, what="statement", max_bytes=_MAX_STATEMENT_BYTES))
        if statement.to_bytes() != bytes(data):
            raise MalformedEnvelopeError(
                "statement is not in canonical JSON form (sorted keys, no whitespace, ASCII escapes)"
            )
        return statement
