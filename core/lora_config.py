"""What the vault does with every field of peft's LoraConfig: one table for every way an adapter comes in.

Why: an adapter must come back out computing the function it went in with, or be refused up front. A field
either decides the function (the schema carries it and every consumer, from the server's merge to the
eraser's effective weights, scales by it), or decides which modules are adapted (resolved, on the way in,
into the schema's explicit module list, so the server never evaluates a tenant's regular expression), or has
no effect in eval mode (kept as given and exported exactly), or is refused unless it has its default value,
naming the field. tests/core/test_lora_config.py holds the table equal to the fields of the pinned peft.

This module imports neither torch nor peft: the server checks stored metadata with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from loravault.proto.untrusted_json import parse_json

from .errors import InvalidArgumentError

__all__ = [
    "FIELD_RULES",
    "INIT_METHODS",
    "MAX_METADATA_BYTES",
    "Rule",
    "check_lora_config",
    "kept_metadata",
    "metadata_fields",
]

MAX_METADATA_BYTES = 16 * 1024


class Rule(Enum):
    FUNCTION = "decides the function: carried by the schema, exported exactly"
    RESOLVED = "decides which modules are adapted: resolved into the schema's module list"
    KEPT = "no effect in eval mode: kept as given and exported exactly"
    REFUSED = "refused unless it has its default value"
    FIXED = "always LORA"


FIELD_RULES: dict[str, Rule] = {
    # the function
    "r": Rule.FUNCTION,
    "lora_alpha": Rule.FUNCTION,
    "use_rslora": Rule.FUNCTION,  # scaling alpha / sqrt(r) instead of alpha / r
    "rank_pattern": Rule.FUNCTION,  # stored per adapted module, by full module name
    "alpha_pattern": Rule.FUNCTION,
    "target_modules": Rule.FUNCTION,  # a list is kept; a regular expression is resolved to module names
    # which modules: folded into target_modules as full module names
    "layers_to_transform": Rule.RESOLVED,
    "layers_pattern": Rule.RESOLVED,
    "exclude_modules": Rule.RESOLVED,
    # no effect on the function in eval mode
    "task_type": Rule.KEPT,
    "auto_mapping": Rule.KEPT,
    "peft_version": Rule.KEPT,
    "base_model_name_or_path": Rule.KEPT,
    "revision": Rule.KEPT,
    "inference_mode": Rule.KEPT,
    "lora_dropout": Rule.KEPT,  # dropout is off in eval mode
    "fan_in_fan_out": Rule.KEPT,  # peft sets it from the layer type (Conv1D or Linear) whatever it says
    "init_lora_weights": Rule.KEPT,  # only INIT_METHODS: the others rewrite the base weights
    "megatron_core": Rule.KEPT,  # a module name, used only with megatron_config
    "qalora_group_size": Rule.KEPT,  # used only with use_qalora
    "runtime_config": Rule.KEPT,  # never saved by peft (ephemeral GPU offload is a loading option)
    "peft_type": Rule.FIXED,
    # other kinds of adapter than plain LoRA on linear layers
    "bias": Rule.REFUSED,
    "modules_to_save": Rule.REFUSED,
    "megatron_config": Rule.REFUSED,
    "trainable_token_indices": Rule.REFUSED,
    "loftq_config": Rule.REFUSED,
    "eva_config": Rule.REFUSED,
    "corda_config": Rule.REFUSED,
    "lora_ga_config": Rule.REFUSED,
    "use_dora": Rule.REFUSED,
    "velora_config": Rule.REFUSED,
    "alora_invocation_tokens": Rule.REFUSED,
    "use_qalora": Rule.REFUSED,
    "monteclora_config": Rule.REFUSED,
    "layer_replication": Rule.REFUSED,
    "lora_bias": Rule.REFUSED,
    "target_parameters": Rule.REFUSED,
    "use_bdlora": Rule.REFUSED,
    "arrow_config": Rule.REFUSED,
    "kasa_config": Rule.REFUSED,
    "ensure_weight_tying": Rule.REFUSED,
}

# what a refused field may say: its default, in the forms peft writes it
_REFUSED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "bias": ("none",),
    "use_dora": (False,),
    "use_qalora": (False,),
    "lora_bias": (False,),
    "ensure_weight_tying": (False,),
}
# initializations that leave the base weights alone (PiSSA, OLoRA, CorDA, LoftQ, EVA, LoRA-GA rewrite them, so
# their adapters are relative to another base than the one the vault binds to)
INIT_METHODS = (True, False, "gaussian")
_REFUSED_WHY = {
    "bias": "LoRA bias terms are not stored (bias must be 'none')",
    "modules_to_save": "fully trained modules are not stored, only LoRA pairs",
    "use_dora": "DoRA's magnitude vectors are not stored",
}


def check_lora_config(config: Mapping[str, Any]) -> None:
    """Refuse, naming the field, a config the vault cannot store as the same function.

    `config` is peft's LoraConfig as a dict (`LoraConfig.to_dict()` or a folder's adapter_config.json).
    """
    peft_type = str(getattr(config.get("peft_type"), "value", config.get("peft_type")))
    if peft_type != "LORA":
        raise InvalidArgumentError(f"peft_type is {peft_type!r}: only LORA adapters are supported")
    for name, value in config.items():
        rule = FIELD_RULES.get(name)
        if rule is None:
            raise InvalidArgumentError(
                f"LoraConfig field {name!r} is not known to this vault (peft 0.21): refused rather than guessed")
        if rule is Rule.REFUSED and not _is_default(name, value):
            why = _REFUSED_WHY.get(name, "the vault stores plain LoRA on linear layers only")
            raise InvalidArgumentError(f"LoraConfig {name}={value!r} is not supported: {why}")
    _check_init(config.get("init_lora_weights", True))


def kept_metadata(config: Mapping[str, Any]) -> str:
    """The kept fields of a checked config, as the canonical JSON object the schema stores."""
    kept = {name: config[name] for name in sorted(config) if FIELD_RULES.get(name) is Rule.KEPT}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=_enum_value)
    if len(text) > MAX_METADATA_BYTES:
        raise InvalidArgumentError(f"the kept LoraConfig fields take {len(text)} bytes, at most "
                                   f"{MAX_METADATA_BYTES} allowed")
    return text


def metadata_fields(text: str) -> dict[str, Any]:
    """Parse stored or received metadata; only kept fields, JSON values, bounded size."""
    if not text:
        return {}
    raw = parse_json(text, what="adapter peft metadata", max_bytes=MAX_METADATA_BYTES)
    if not isinstance(raw, dict):
        raise InvalidArgumentError("adapter peft metadata must be a JSON object")
    for name in raw:
        if FIELD_RULES.get(name) is not Rule.KEPT:
            raise InvalidArgumentError(f"adapter peft metadata names {name!r}, which is not a kept LoraConfig field")
    _check_init(raw.get("init_lora_weights", True))
    return raw


def _check_init(init: Any) -> None:
    if not any(init is method or (isinstance(init, str) and init == method) for method in INIT_METHODS):
        raise InvalidArgumentError(
            f"LoraConfig init_lora_weights={init!r} is not supported: that initialization rewrites the base "
            f"weights, so the adapter does not apply to the base it is bound to (use one of {INIT_METHODS})")


def _is_default(name: str, value: Any) -> bool:
    if value is None:
        return True
    if name in _REFUSED_DEFAULTS:
        return any(value == default and type(value) is type(default) for default in _REFUSED_DEFAULTS[name])
    return value in ([], {}, ())


def _enum_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
