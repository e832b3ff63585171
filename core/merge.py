"""The float32 merge an erasure is signed over: head + delta, element by element, refused unless finite.

The client computes it to sign the result hash (the SHA-256 of the sum's canonical float32 bytes); the server
computes it again and compares. Both call `merge_float32`, so the two sums are the same float32 additions,
bit for bit: float32(head) + float32(delta), each element rounded once (IEEE 754), whatever the inputs'
dtypes. The server passes `out`, views of a CanonicalLayout buffer, so the sum lands in its final bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from .errors import InvalidArgumentError
from .norms import finite_frobenius_norm

__all__ = ["merge_float32"]


def merge_float32(
    head: Mapping[str, torch.Tensor],
    delta: Mapping[str, torch.Tensor],
    *,
    names: Iterable[str] | None = None,
    out: Mapping[str, torch.Tensor] | None = None,
    what: str = "merged",
) -> tuple[dict[str, torch.Tensor], float]:
    """float32(head[n]) + float32(delta[n]) for each name n, and the Frobenius norm of the whole sum.

    `names` gives the order (default: head's); `out`, when given, holds a float32 tensor of each name's shape
    that receives the sum (it is returned in place of new tensors). The inputs are never modified. Names and
    shapes must already match (the caller checks them against its schema).

    Raises:
        InvalidArgumentError: `{what} tensor <name> is not finite`, for the first name whose sum holds a NaN or
            an infinity.
    """
    order = tuple(head if names is None else names)
    merged = {name: torch.add(head[name].to(torch.float32), delta[name].to(torch.float32),
                              out=None if out is None else out[name])
              for name in order}
    norm, nonfinite = finite_frobenius_norm((name, merged[name]) for name in order)
    if nonfinite is not None:
        raise InvalidArgumentError(f"{what} tensor {nonfinite} is not finite")
    return merged, norm
