"""The one parser of JSON from outside (envelopes, statements, public keys, schemas, safetensors headers).

Strict JSON only: UTF-8, no duplicate keys, no NaN or infinities. Size and nesting depth are refused before
the decoder runs, so no input can make it recurse deeply (Python's json decoder raises RecursionError past
about a thousand levels, which escaped as UNKNOWN before) or work on more than `max_bytes`.

    >>> parse_json(b'{"a": [1, 2]}', what="example", max_bytes=64)
    {'a': [1, 2]}
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from .errors import MalformedEnvelopeError

__all__ = ["MAX_JSON_DEPTH", "parse_json"]

MAX_JSON_DEPTH = 32  # every loravault document nests at most 6 levels
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def parse_json(data: bytes | str, *, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON of at most `max_bytes` bytes nested at most `max_depth` levels.

    `what` names the input in the error message ("envelope", "public key").

    Raises:
        MalformedEnvelopeError: too large, too deep, not UTF-8, or not strict JSON; `from` the decoder's error.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise MalformedEnvelopeError(f"{what} is {len(raw)} bytes of JSON, more than the {max_bytes} allowed")
    depth = _nesting_depth(raw)
    if depth > max_depth:
        raise MalformedEnvelopeError(f"{what} nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object, parse_float=_finite_float,
                          parse_constant=_no_constant)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and the hooks below
    except (ValueError, RecursionError, TypeError) as exc:
        raise MalformedEnvelopeError(f"{what} is not valid JSON ({len(raw)} bytes): {exc}") from exc


def _nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting outside strings (an unterminated string counts its brackets: refused later)."""
    brackets = _STRING.sub(b"", raw).translate(None, delete=_NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: two parsers that keep different duplicates would read different documents."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:64]!r}")
        obj[key] = value
    return obj


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:32]} is out of range")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
