"""Flat parameter vectors: the one ordering in which solvers see the adapter's named tensors.

Solvers work on flat vectors (pure math); the model works on named tensors. `ParamLayout` maps between the two
in the adapter's sorted tensor-name order, with any number of leading batch dimensions.

    >>> layout = ParamLayout(names=("a", "b"), shapes=((2, 3), (4,)))
    >>> layout.size
    10
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from loravault.core import InvalidArgumentError

__all__ = ["ParamLayout"]


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the trainable tensors, in flattening order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.shapes) or not self.names:
            raise InvalidArgumentError("a parameter layout needs one shape per name and at least one name")

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def spans(self) -> dict[str, slice]:
        """The slice of the flat vector that holds each tensor."""
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            stop = start + math.prod(shape)
            out[name] = slice(start, stop)
            start = stop
        return out

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate tensors (each with the same leading dims) into (..., P)."""
        parts = []
        for name, shape in zip(self.names, self.shapes):
            tensor = tensors[name]
            lead = tensor.shape[: tensor.dim() - len(shape)]
            parts.append(tensor.reshape(*lead, math.prod(shape)))
        return torch.cat(parts, dim=-1)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a (..., P) vector as named tensors of shape (..., *shape)."""
        if vector.shape[-1] != self.size:
            raise InvalidArgumentError(f"flat vector has {vector.shape[-1]} entries, the layout holds {self.size}")
        lead = vector.shape[:-1]
        return {name: vector[..., span].reshape(*lead, *shape) for (name, span), shape in zip(self.spans().items(), self.shapes)}
