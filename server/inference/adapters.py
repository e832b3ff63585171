"""An adapter made ready for serving: its LoRA pairs mapped onto the base model's layers, on the device.

`AdapterSlot` is the one dataclass that holds everything per adapter (no parallel dicts keyed by name): the
blob hash it was built from, its rank, one `LoraWeights` per adapted projection with the LoRA scaling folded
into B, and which (tenant, adapter, version) currently resolve to these bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from loravault.core import AdapterSchema
from loravault.core.errors import FailedPreconditionError

from .llama import as_llama

__all__ = ["AdapterSlot", "LoraWeights", "ModelLayout", "ModuleKey", "PROJECTIONS", "build_slot"]

# the projections of a Llama decoder layer an adapter may target
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MODULE = re.compile(r"(?:^|\.)layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\.(?P<proj>" + "|".join(PROJECTIONS) + r")$")

ModuleKey = tuple[int, str]  # (layer index, projection name)
Owner = tuple[str, str, int]  # (tenant, adapter, version)


@dataclass(frozen=True)
class ModelLayout:
    """The base model's projection shapes, (d_out, d_in) per projection name, and its layer count."""

    n_layers: int
    shapes: Mapping[str, tuple[int, int]]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelLayout:
        layers = as_llama(model).model.layers
        layer = layers[0]
        shapes = {}
        for name in PROJECTIONS:
            parent = layer.self_attn if hasattr(layer.self_attn, name) else layer.mlp
            weight = getattr(parent, name).weight
            shapes[name] = (int(weight.shape[0]), int(weight.shape[1]))
        return cls(n_layers=len(layers), shapes=shapes)


@dataclass(frozen=True)
class LoraWeights:
    """One adapted projection: delta(x) = (x @ a.T) @ b.T, with the LoRA scaling alpha/r already in b."""

    a: torch.Tensor  # (r, d_in)
    b: torch.Tensor  # (d_out, r), scaled


@dataclass(eq=False)
class AdapterSlot:
    """One adapter's serving state, shared by every (tenant, adapter, version) whose blob has these bytes."""

    blob_sha256: str
    rank: int
    modules: dict[ModuleKey, LoraWeights]
    nbytes: int
    owners: set[Owner] = field(default_factory=set)


def build_slot(
    schema: AdapterSchema, tensors: Mapping[str, torch.Tensor], *, sha256: str, layout: ModelLayout,
    device: torch.device, dtype: torch.dtype,
) -> AdapterSlot:
    """Map a version's tensors onto the base's projections; FailedPreconditionError when they do not fit it.

    The tensors were checked against the schema at upload; here they are checked against the base model that
    serves them (layer index in range, projection shapes), since a schema only names tensor shapes.
    """
    modules: dict[ModuleKey, LoraWeights] = {}
    for pair in schema.pairs():
        match = _MODULE.search(pair.module)
        if match is None:
            raise FailedPreconditionError(
                f"adapter module {pair.module} is not a decoder projection ({', '.join(PROJECTIONS)}): the engine "
                "cannot serve it")
        layer, proj = int(match["layer"]), match["proj"]
        a, b = tensors[pair.a_name], tensors[pair.b_name]
        d_out, d_in = layout.shapes[proj]
        if layer >= layout.n_layers or tuple(a.shape) != (a.shape[0], d_in) or tuple(b.shape) != (d_out, a.shape[0]):
            raise FailedPreconditionError(
                f"adapter module {pair.module}: A {tuple(a.shape)} and B {tuple(b.shape)} do not fit the base's "
                f"{proj} of shape ({d_out}, {d_in}) in {layout.n_layers} layers")
        # scale in float32, then cast: the same order as computing scaling * (B @ A x) in float32
        modules[(layer, proj)] = LoraWeights(
            a=a.to(device=device, dtype=dtype).contiguous(),
            b=(b.to(torch.float32) * schema.scaling_of(pair)).to(device=device, dtype=dtype).contiguous(),
        )
    nbytes = sum(w.a.numel() * w.a.element_size() + w.b.numel() * w.b.element_size() for w in modules.values())
    rank = max(weights.a.shape[0] for weights in modules.values())  # rank_pattern may give modules other ranks
    return AdapterSlot(blob_sha256=sha256, rank=rank, modules=modules, nbytes=nbytes)
