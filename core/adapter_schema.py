"""The adapter schema: LoRA settings, tensor names and shapes, dtype, and the base it binds to.

The schema is fixed when an adapter is created; every version's tensors must match it exactly, and it bounds
how many bytes an upload of that adapter may carry before a single byte is buffered. It carries everything that
decides the adapter's function as peft computes it (the rank and alpha of every module, rsLoRA), so the
server's merge, the inference engine and the eraser scale each module as peft does (core/lora_config.py says
what happens to every other LoraConfig field). A schema lists at most MAX_TENSORS tensors (a documented server
limit: a rank-r LoRA on all seven linear layers of a 126-layer model has 1,764), and validating one is linear
in its size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from loravault.proto.digests import is_sha256_hex
from loravault.proto.untrusted_json import parse_json

from .errors import DeserializationError, FailedPreconditionError, InvalidArgumentError
from .lora_config import metadata_fields

__all__ = [
    "AdapterSchema", "TensorSpec", "LoraPair", "DTYPES", "HEADER_ALLOWANCE", "MAX_TENSORS", "PEFT_PREFIX",
    "all_finite", "lora_pairs",
]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# safetensors header bytes allowed per tensor (its JSON entry) plus a fixed part for metadata
HEADER_ALLOWANCE = 4096
_PER_TENSOR_HEADER = 512
MAX_TENSORS = 4096
_MAX_NAME_CHARS = 512
_MAX_SCHEMA_JSON = MAX_TENSORS * (_MAX_NAME_CHARS + 128) + 64 * 1024  # every tensor's entry, plus the rest
_LORA_NAME = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.weight$")
PEFT_PREFIX = "base_model.model."  # peft's saved tensor names are the base's module names under this prefix


def all_finite(tensor: torch.Tensor) -> bool:
    """True when no element is NaN or infinite, usually in one reduction instead of a boolean mask.

    A NaN or infinity makes the sum non-finite, so a finite sum proves every element finite; only a sum that
    overflowed (or a real NaN) falls back to the elementwise test.
    """
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the adapter: its PEFT state-dict name and shape."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LoraPair:
    """The A and B tensors of one adapted module; effective weight = scaling * B @ A."""

    module: str  # as in the tensor names: PEFT_PREFIX + the base's module name
    a_name: str
    b_name: str

    @property
    def base_module(self) -> str:
        """The module's name in the base model, which rank_pattern and alpha_pattern are keyed by."""
        return self.module.removeprefix(PEFT_PREFIX)


@dataclass(frozen=True)
class AdapterSchema:
    """What every version of one adapter must look like."""

    # LoRA hyper-parameters
    rank: int  # r, the inner dimension of B @ A (of every module rank_pattern does not name)
    alpha: float  # lora_alpha (of every module alpha_pattern does not name)
    # module names or suffixes, matched as peft matches a list (equal, or ends with "." + the entry)
    target_modules: tuple[str, ...]
    # tensors
    tensors: tuple[TensorSpec, ...]  # sorted by name
    dtype: str  # storage dtype of every tensor: float32, float16 or bfloat16
    # binding
    base_fingerprint: str  # SHA-256 hex of the base model's canonical weights
    # the rest of what decides the function, as peft computes it
    use_rslora: bool = False  # scaling alpha / sqrt(r) instead of alpha / r
    rank_pattern: tuple[tuple[str, int], ...] = ()  # (base module name, r), sorted: resolved, never a pattern
    alpha_pattern: tuple[tuple[str, float], ...] = ()  # (base module name, alpha), sorted
    # the LoraConfig fields with no effect in eval mode, as a JSON object, exported exactly ("" = none given)
    peft_metadata: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise InvalidArgumentError(f"adapter rank must be a positive integer, got {self.rank!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise InvalidArgumentError(f"adapter alpha must be a positive finite number, got {self.alpha!r}")
        if not self.target_modules:
            raise InvalidArgumentError("adapter schema names no target modules")
        if len(self.target_modules) > MAX_TENSORS or len(set(self.target_modules)) != len(self.target_modules) or any(
                not isinstance(m, str) or not m or len(m) > _MAX_NAME_CHARS for m in self.target_modules):
            raise InvalidArgumentError(
                f"target_modules must be at most {MAX_TENSORS} distinct names of 1 to {_MAX_NAME_CHARS} characters")
        if self.dtype not in DTYPES:
            raise InvalidArgumentError(f"adapter dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not is_sha256_hex(self.base_fingerprint):
            raise InvalidArgumentError("base fingerprint must be 64 lowercase hex digits (a SHA-256)")
        if not isinstance(self.use_rslora, bool):
            raise InvalidArgumentError(f"use_rslora must be true or false, got {self.use_rslora!r}")
        metadata_fields(self.peft_metadata)
        self._check_tensor_specs()
        self._check_patterns()

    def _check_tensor_specs(self) -> None:
        if not self.tensors:
            raise InvalidArgumentError("adapter schema has no tensors")
        if len(self.tensors) > MAX_TENSORS:
            raise InvalidArgumentError(
                f"adapter schema lists {len(self.tensors)} tensors, at most {MAX_TENSORS} allowed")
        names = [spec.name for spec in self.tensors]
        if names != sorted(set(names)):
            raise InvalidArgumentError("adapter schema tensor names must be unique and sorted")
        for spec in self.tensors:
            if not spec.name or len(spec.name) > _MAX_NAME_CHARS:
                raise InvalidArgumentError(
                    f"tensor name {spec.name[:40]!r} must have 1 to {_MAX_NAME_CHARS} characters")
            if not spec.shape or any((not isinstance(d, int)) or d <= 0 for d in spec.shape):
                raise InvalidArgumentError(f"tensor {spec.name} has invalid shape {spec.shape}")
        for pair in self.pairs():
            a, b = self.shape_of(pair.a_name), self.shape_of(pair.b_name)
            rank = self.rank_of(pair)
            if len(a) != 2 or len(b) != 2 or a[0] != rank or b[1] != rank:
                raise InvalidArgumentError(f"module {pair.module}: lora_A {a} and lora_B {b} do not have rank {rank}")

    def _check_patterns(self) -> None:
        """Each pattern entry names an adapted module once, in order, with a value peft accepts."""
        adapted = {pair.base_module for pair in self.pairs()}
        for what, pattern in (("rank_pattern", self.rank_pattern), ("alpha_pattern", self.alpha_pattern)):
            names = [name for name, _ in pattern]
            if names != sorted(set(names)):
                raise InvalidArgumentError(f"{what} module names must be unique and sorted")
            for name, value in pattern:
                if name not in adapted:
                    raise InvalidArgumentError(f"{what} names {name[:80]!r}, which the adapter has no tensors for")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or value <= 0 or (what == "rank_pattern" and not isinstance(value, int)):
                    raise InvalidArgumentError(f"{what} gives {name} the value {value!r}: must be positive")

    @cached_property
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {spec.name: spec.shape for spec in self.tensors}

    # derived views

    def rank_of(self, pair: LoraPair) -> int:
        return self._ranks.get(pair.base_module, self.rank)

    def scaling_of(self, pair: LoraPair) -> float:
        """peft's LoraLayer scaling: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA, per module."""
        alpha, rank = self._alphas.get(pair.base_module, self.alpha), self.rank_of(pair)
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank

    @cached_property
    def _ranks(self) -> dict[str, int]:
        return dict(self.rank_pattern)

    @cached_property
    def _alphas(self) -> dict[str, float]:
        return dict(self.alpha_pattern)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def shape_of(self, name: str) -> tuple[int, ...]:
        try:
            return self._shapes[name]
        except KeyError:
            raise InvalidArgumentError(f"tensor {name} is not in the adapter schema") from None

    def pairs(self) -> list[LoraPair]:
        """The (A, B) pairs by module; a tensor that is not part of a pair is refused."""
        return list(self._pairs)

    @cached_property
    def _pairs(self) -> tuple[LoraPair, ...]:
        return lora_pairs(spec.name for spec in self.tensors)

    def parameter_count(self) -> int:
        return sum(math.prod(spec.shape) for spec in self.tensors)

    def tensor_bytes(self) -> int:
        return self.parameter_count() * self.torch_dtype.itemsize

    def max_blob_bytes(self) -> int:
        """The most bytes a valid safetensors blob of this schema can have: data plus a bounded header."""
        return self.tensor_bytes() + HEADER_ALLOWANCE + _PER_TENSOR_HEADER * len(self.tensors)

    # checks

    def describes_the_same_adapter(self, other: AdapterSchema) -> bool:
        """Same tensors, dtype, binding and LoRA settings. The kept metadata may differ (a later version made
        with another peft release): an adapter's is fixed when it is created, and that is what is exported."""
        return all(getattr(self, field.name) == getattr(other, field.name)
                   for field in dataclasses.fields(self) if field.name != "peft_metadata")

    def check_binding(self, base_fingerprint: str) -> None:
        """Raise FailedPreconditionError when the adapter was made for another base model."""
        if base_fingerprint != self.base_fingerprint:
            raise FailedPreconditionError(
                f"adapter is bound to base {self.base_fingerprint[:12]}…, this server holds {base_fingerprint[:12]}…"
            )

    def check_tensors(
        self, tensors: Mapping[str, torch.Tensor], *, what: str = "adapter", finite: bool = True
    ) -> None:
        """Raise InvalidArgumentError unless names, shapes and dtype match exactly and (with `finite`, for
        callers that do not measure the tensors anyway) every value is finite."""
        expected = {spec.name: spec.shape for spec in self.tensors}
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing:
            raise InvalidArgumentError(f"{what} is missing tensor {missing[0]} (and {len(missing) - 1} more)")
        if extra:
            raise InvalidArgumentError(f"{what} has tensor {extra[0]} that the schema does not name")
        for name, shape in expected.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != shape:
                raise InvalidArgumentError(f"{what} tensor {name} has shape {tuple(tensor.shape)}, schema says {shape}")
            if tensor.dtype != self.torch_dtype:
                raise InvalidArgumentError(f"{what} tensor {name} has dtype {tensor.dtype}, schema says {self.dtype}")
            if finite and not all_finite(tensor):
                raise InvalidArgumentError(f"{what} tensor {name} has NaN or infinite values")

    # serialization

    def to_json(self) -> str:
        """Canonical JSON; a field at its default is left out, so schemas stored before it existed read back
        (and hash) the same."""
        fields: dict[str, object] = {
            "rank": self.rank,
            "alpha": self.alpha,
            "target_modules": list(self.target_modules),
            "tensors": [{"name": s.name, "shape": list(s.shape)} for s in self.tensors],
            "dtype": self.dtype,
            "base_fingerprint": self.base_fingerprint,
        }
        optional = {"use_rslora": self.use_rslora, "rank_pattern": dict(self.rank_pattern),
                    "alpha_pattern": dict(self.alpha_pattern), "peft_metadata": self.peft_metadata}
        fields.update({name: value for name, value in optional.items() if value})
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AdapterSchema:
        """Parse a schema from untrusted JSON; failures become DeserializationError or InvalidArgumentError."""
        try:
            raw = parse_json(text, what="adapter schema", max_bytes=_MAX_SCHEMA_JSON)
            if len(raw["tensors"]) > MAX_TENSORS:
                raise InvalidArgumentError(
                    f"adapter schema lists {len(raw['tensors'])} tensors, at most {MAX_TENSORS} allowed")
            return cls(
                rank=int(raw["rank"]),
                alpha=float(raw["alpha"]),
                target_modules=tuple(str(m) for m in raw["target_modules"]),
                tensors=tuple(TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"])) for t in raw["tensors"]),
                dtype=str(raw["dtype"]),
                base_fingerprint=str(raw["base_fingerprint"]),
                use_rslora=raw.get("use_rslora", False),
                rank_pattern=_pattern(raw.get("rank_pattern", {})),
                alpha_pattern=_pattern(raw.get("alpha_pattern", {})),
                peft_metadata=str(raw.get("peft_metadata", "")),
            )
        except InvalidArgumentError:  # MalformedEnvelopeError (the JSON) is one too
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise DeserializationError(f"adapter schema is not valid JSON of the expected form: {exc}") from exc

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, torch.Tensor],
        *,
        rank: int,
        alpha: float,
        target_modules: tuple[str, ...],
        base_fingerprint: str,
        use_rslora: bool = False,
        rank_pattern: Mapping[str, int] | None = None,
        alpha_pattern: Mapping[str, float] | None = None,
        peft_metadata: str = "",
    ) -> AdapterSchema:
        """Describe existing tensors; they must all share one dtype."""
        dtypes = {t.dtype for t in tensors.values()}
        names = [name for name, dtype in DTYPES.items() if dtype in dtypes]
        if len(dtypes) != 1 or not names:
            raise InvalidArgumentError(f"adapter tensors must share one float dtype, found {sorted(map(str, dtypes))}")
        specs = tuple(TensorSpec(name, tuple(tensors[name].shape)) for name in sorted(tensors))
        return cls(
            rank=rank,
            alpha=alpha,
            target_modules=tuple(sorted(target_modules)),
            tensors=specs,
            dtype=names[0],
            base_fingerprint=base_fingerprint,
            use_rslora=use_rslora,
            rank_pattern=tuple(sorted((rank_pattern or {}).items())),
            alpha_pattern=tuple(sorted((name, float(alpha)) for name, alpha in (alpha_pattern or {}).items())),
            peft_metadata=peft_metadata,
        )


def lora_pairs(names: Iterable[str]) -> tuple[LoraPair, ...]:
    """Group PEFT tensor names into (A, B) pairs by module, sorted; a name that is not half a pair is refused."""
    modules: dict[str, dict[str, str]] = {}
    for name in names:
        match = _LORA_NAME.match(name)
        if match is None:
            raise InvalidArgumentError(f"tensor {name} is not a LoRA weight (…lora_A.weight/lora_B.weight)")
        modules.setdefault(match["module"], {})[match["which"]] = name
    pairs = []
    for module, found in sorted(modules.items()):
        if set(found) != {"A", "B"}:
            raise InvalidArgumentError(f"module {module} has lora_{''.join(found)} but not both A and B")
        pairs.append(LoraPair(module=module, a_name=found["A"], b_name=found["B"]))
    return tuple(pairs)


def _pattern(raw: object) -> tuple[tuple[str, Any], ...]:
    """A stored pattern (a JSON object of module name to value) as the schema's sorted pairs; the schema
    checks the values."""
    if not isinstance(raw, dict):
        raise InvalidArgumentError("a rank or alpha pattern must be a JSON object of module names")
    return tuple(sorted(raw.items()))
