"""LoRA math on adapter tensors: effective weights, adding a delta, and distances in effective weights.

Two adapters with different A and B can be the same function; comparisons therefore use the effective weight
Delta W = scaling * B @ A of every module (Hu et al., arXiv:2106.09685, eq. 3; the scaling is peft's, per
module: alpha / r, or alpha / sqrt(r) with rsLoRA), computed in float32.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .adapter_schema import AdapterSchema
from .errors import InvalidArgumentError
from .merge import merge_float32
from .norms import frobenius_norm

__all__ = ["effective_weights", "add_delta", "effective_distance"]


def effective_weights(schema: AdapterSchema, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per module, scaling * B @ A in float32."""
    out = {}
    for pair in schema.pairs():
        a = tensors[pair.a_name].to(torch.float32)  # (r, d_in)
        b = tensors[pair.b_name].to(torch.float32)  # (d_out, r)
        out[pair.module] = schema.scaling_of(pair) * (b @ a)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)
    return out


def add_delta(
    schema: AdapterSchema, tensors: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Return tensors + delta in float32, as new tensors; the inputs are never modified.

    Raises InvalidArgumentError when the delta's names or shapes differ from the schema or the sum is not finite.
    """
    if set(delta) != set(tensors):
        missing = sorted(set(tensors) - set(delta)) or sorted(set(delta) - set(tensors))
        raise InvalidArgumentError(f"delta and adapter name different tensors (first difference: {missing[0]})")
    for name, value in tensors.items():
        change = delta[name]
        if tuple(change.shape) != tuple(value.shape):
            raise InvalidArgumentError(f"delta tensor {name} has shape {tuple(change.shape)}, adapter has {tuple(value.shape)}")
    merged, _ = merge_float32(tensors, delta)
    return merged


def effective_distance(
    schema: AdapterSchema, left: Mapping[str, torch.Tensor], right: Mapping[str, torch.Tensor]
) -> float:
    """Frobenius distance between two adapters' effective weights, over all modules together."""
    wl, wr = effective_weights(schema, left), effective_weights(schema, right)
    return frobenius_norm({m: wl[m] - wr[m] for m in wl})
