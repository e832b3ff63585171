"""The base model as adapters see it: name, fingerprint, and every module a LoRA pair may attach to.

Why: the fingerprint in a schema is only a claim, and an adapter made outside the project (a bare PEFT folder)
carries none it could prove. So the server checks every tensor against the base it actually holds: the module
exists and is linear, A and B have its in and out features and the schema's rank for it, the config targets
it, and every module the config targets has its pair (peft would otherwise load the export as another
function, or refuse it). Targets match as peft matches a list: a module is targeted when its name equals an
entry or ends with "." + the entry.

    >>> layout = BaseLayout.of(load_base("tiny"))
    >>> check_fits(schema, layout)        # FailedPreconditionError naming the first mismatch
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from .adapter_schema import PEFT_PREFIX, AdapterSchema, LoraPair
from .errors import FailedPreconditionError

if TYPE_CHECKING:
    from .models import BaseModel

__all__ = ["BaseLayout", "check_fits"]


@dataclass(frozen=True)
class BaseLayout:
    """What the server knows of its base model when it checks an adapter."""

    name: str
    fingerprint: str
    linear: Mapping[str, tuple[int, int]]  # module name -> (in_features, out_features)
    other: Mapping[str, str]  # every other module name -> its class name, for a clear refusal

    @classmethod
    def of(cls, base: BaseModel) -> BaseLayout:
        return cls.from_model(base.model, name=base.name, fingerprint=base.fingerprint)

    @classmethod
    def from_model(cls, model: nn.Module, *, name: str, fingerprint: str) -> BaseLayout:
        """Any torch module tree works, a meta-device one included: only shapes are read."""
        from transformers.pytorch_utils import Conv1D

        linear, other = {}, {}
        for module_name, module in model.named_modules():
            if not module_name:
                continue
            if isinstance(module, nn.Linear):
                linear[module_name] = (module.in_features, module.out_features)
            elif isinstance(module, Conv1D):  # GPT-2's transposed linear layer: weight is (in, out)
                linear[module_name] = (int(module.weight.shape[0]), int(module.weight.shape[1]))
            else:
                other[module_name] = type(module).__name__
        return cls(name=name, fingerprint=fingerprint, linear=linear, other=other)


def check_fits(schema: AdapterSchema, layout: BaseLayout) -> None:
    """Raise FailedPreconditionError naming the first way the adapter does not fit the base."""
    schema.check_binding(layout.fingerprint)
    targets = set(schema.target_modules)
    matched: set[str] = set()
    adapted = set()
    for pair in schema.pairs():
        key = _base_module(pair, layout)
        hits = targets.intersection(_suffixes(key))
        if not hits:
            raise FailedPreconditionError(
                f"module {key} has LoRA tensors but target_modules {sorted(targets)[:8]} does not name it: "
                "peft would drop them on load")
        matched |= hits
        adapted.add(key)
        _check_shapes(schema, pair, key, layout.linear[key])
    for key in layout.linear:
        if key not in adapted and targets.intersection(_suffixes(key)):
            raise FailedPreconditionError(
                f"target_modules names {key} of base {layout.name}, but the adapter has no tensors for it")
    unmatched = sorted(targets - matched)
    if unmatched:
        raise FailedPreconditionError(
            f"target_modules entry {unmatched[0]!r} matches no adapted module of base {layout.name}")


def _base_module(pair: LoraPair, layout: BaseLayout) -> str:
    if not pair.module.startswith(PEFT_PREFIX):
        raise FailedPreconditionError(
            f"adapter tensor {pair.a_name} is not under {PEFT_PREFIX!r}, where peft saves a causal LM's LoRA")
    key = pair.base_module
    if key not in layout.linear:
        kind = layout.other.get(key)
        found = f"its {key} is a {kind}; LoRA pairs attach to linear layers only" if kind else f"it has no {key}"
        raise FailedPreconditionError(f"adapter tensor {pair.a_name} does not fit base {layout.name}: {found}")
    return key


def _check_shapes(schema: AdapterSchema, pair: LoraPair, key: str, features: tuple[int, int]) -> None:
    in_features, out_features = features
    rank = schema.rank_of(pair)
    for name, expected in ((pair.a_name, (rank, in_features)), (pair.b_name, (out_features, rank))):
        shape = schema.shape_of(name)
        if shape != expected:
            raise FailedPreconditionError(
                f"adapter tensor {name} has shape {shape}; module {key} of base has in_features {in_features} and "
                f"out_features {out_features}, so rank {rank} needs {expected}")


def _suffixes(key: str) -> Iterable[str]:
    """Every name a list entry may use for `key`: the whole name and each dotted tail of it."""
    parts = key.split(".")
    return {".".join(parts[i:]) for i in range(len(parts))}
