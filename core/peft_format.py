"""PEFT's own on-disk format (adapter_config.json + adapter_model.safetensors), in and out.

An exported folder loads with PeftModel.from_pretrained, vLLM or LoRAX as it is. The base fingerprint rides in
a third file, loravault.json, which those loaders never open (an extra key in adapter_config.json would make
peft warn on every load).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists
from peft.utils.other import get_pattern_key
from transformers import PreTrainedModel

from .adapter_schema import AdapterSchema, lora_pairs
from .errors import DeserializationError, InvalidArgumentError, NotFoundError
from .fingerprint import weights_fingerprint
from .lora_config import check_lora_config, kept_metadata, metadata_fields
from .tensors import decode_tensors, encode_tensors

__all__ = [
    "BINDING_FILE",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "adapter_from_peft_model",
    "exported_config",
    "lora_config_for",
    "peft_base_fingerprint",
    "new_peft_model",
    "peft_model_with_adapter",
    "read_peft_folder",
    "schema_from_config",
    "write_peft_folder",
]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
BINDING_FILE = "loravault.json"


def lora_config_for(schema: AdapterSchema) -> LoraConfig:
    """The peft LoraConfig that computes the schema's function, for serving and erasure (no dropout: both
    run in eval mode, and the eraser's gradients must not be random)."""
    return LoraConfig(**_function_fields(schema), lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")


def exported_config(schema: AdapterSchema, *, base_name: str = "") -> dict[str, Any]:
    """adapter_config.json for the schema: the function fields, and the kept fields exactly as they came in
    (core/lora_config.py); an adapter that came in without them gets peft's defaults and `base_name`."""
    kept = metadata_fields(schema.peft_metadata)
    fields: dict[str, Any] = {"task_type": "CAUSAL_LM", "base_model_name_or_path": base_name or None, "inference_mode": True}
    fields.update({name: value for name, value in kept.items() if name != "runtime_config"})
    config = LoraConfig(**fields, **_function_fields(schema)).to_dict()
    config["target_modules"] = sorted(config["target_modules"])
    return config


def schema_from_config(
    config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, base_fingerprint: str
) -> AdapterSchema:
    """The schema of `tensors` saved under a peft LoraConfig (as a dict), or InvalidArgumentError naming the
    field or tensor that cannot round-trip.

    Which modules the config adapts, and each one's rank and alpha, are resolved here with peft's own matching
    (check_target_module_exists, get_pattern_key), so the schema lists names, never patterns.
    """
    check_lora_config(config)
    lora = _lora_config(config)
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    modules: list[str] = []
    ranks, alphas = lora.rank_pattern or {}, lora.alpha_pattern or {}  # peft's __post_init__ makes None {}
    for pair in lora_pairs(tensors):
        key = pair.base_module
        if not _targets(lora, key):
            raise InvalidArgumentError(
                f"adapter tensor {pair.a_name} is on {key}, which the config's target_modules, layers_to_transform "
                "or exclude_modules leave out: peft would drop it on load")
        modules.append(key)
        rank = ranks.get(get_pattern_key(list(ranks), key), lora.r)
        alpha = alphas.get(get_pattern_key(list(alphas), key), lora.lora_alpha)
        found = tuple(tensors[pair.a_name].shape)[:1]
        if found != (rank,):
            raise InvalidArgumentError(f"adapter tensor {pair.a_name} has rank {found[0] if found else '?'}; the "
                                       f"config's r and rank_pattern give {key} rank {rank}")
        if rank != lora.r:
            rank_pattern[key] = int(rank)
        if alpha != lora.lora_alpha:
            alpha_pattern[key] = float(alpha)
    targets = lora.target_modules
    if targets is None or isinstance(targets, str) or lora.layers_to_transform is not None or lora.exclude_modules:
        targets = modules  # resolved: the list of exactly the adapted modules means the same to peft
    return AdapterSchema.from_tensors(
        tensors, rank=int(lora.r), alpha=float(lora.lora_alpha), target_modules=tuple(sorted(set(targets))),
        base_fingerprint=base_fingerprint, use_rslora=bool(lora.use_rslora), rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern, peft_metadata=kept_metadata(config),
    )


def peft_base_fingerprint(model: PeftModel) -> str:
    """The fingerprint of the base weights under a PeftModel, as `load_base` computes it for the bare base
    (float32, the base's own tensor names): what an upload of this model may claim to be bound to."""
    state = {}
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        state[name.replace(".base_layer.", ".")] = tensor.to(torch.float32)
    return weights_fingerprint(state)


def adapter_from_peft_model(model: PeftModel, *, base_fingerprint: str) -> tuple[AdapterSchema, dict[str, torch.Tensor]]:
    """The schema and tensors of a PeftModel's active LoRA adapter, in PEFT's saved names."""
    config = model.peft_config[model.active_adapter]
    if not isinstance(config, LoraConfig):
        raise InvalidArgumentError(f"adapter {model.active_adapter!r} is {type(config).__name__}, not LoRA")
    tensors = {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(model).items()}
    return schema_from_config(config.to_dict(), tensors, base_fingerprint=base_fingerprint), tensors


def new_peft_model(base: PreTrainedModel, config: LoraConfig, *, adapter_name: str = "default") -> PeftModel:
    """`peft.get_peft_model`, without the FutureWarning peft itself triggers on transformers 5.

    NOTE: PeftModel.__init__ reads transformers' deprecated `is_gradient_checkpointing`; the warning comes from
    inside peft whatever the caller passes, so it is ignored here, for this message and this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(base, config, adapter_name=adapter_name)


def peft_model_with_adapter(
    base: PreTrainedModel, schema: AdapterSchema, tensors: dict[str, torch.Tensor], *, adapter_name: str = "default"
) -> PeftModel:
    """Wrap `base` (modified in place by peft) with the adapter's weights loaded, in eval mode."""
    schema.check_tensors(tensors)
    model = new_peft_model(base, lora_config_for(schema), adapter_name=adapter_name)
    result = set_peft_model_state_dict(model, tensors, adapter_name=adapter_name)
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]  # type: ignore[attr-defined]  # peft leaves it untyped
    if unexpected:
        raise InvalidArgumentError(f"adapter tensor {unexpected[0]} matches no module of the base model")
    return model.eval()


def write_peft_folder(
    folder: Path, schema: AdapterSchema, tensors: dict[str, torch.Tensor], *, base_name: str = ""
) -> None:
    """Write PEFT's two files, and the base fingerprint in loravault.json."""
    folder.mkdir(parents=True, exist_ok=True)
    config = exported_config(schema, base_name=base_name)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    (folder / BINDING_FILE).write_text(json.dumps({"base_fingerprint": schema.base_fingerprint}, indent=2))
    (folder / WEIGHTS_FILE).write_bytes(encode_tensors(tensors))


def read_peft_folder(folder: Path, *, base_fingerprint: str | None = None) -> tuple[AdapterSchema, dict[str, torch.Tensor]]:
    """Read a PEFT LoRA folder. The fingerprint comes from loravault.json, else from `base_fingerprint`."""
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise NotFoundError(f"{folder} is not a PEFT adapter folder: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise DeserializationError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise DeserializationError(f"{config_path} does not hold a JSON object")
    fingerprint = _bound_fingerprint(folder) or base_fingerprint
    if not fingerprint:
        raise InvalidArgumentError(f"{folder} names no base fingerprint; pass the base it was trained on")
    tensors = decode_tensors(weights_path.read_bytes())
    try:
        return schema_from_config(config, tensors, base_fingerprint=fingerprint), tensors
    except InvalidArgumentError as error:
        raise type(error)(f"{config_path}: {error}") from None


def _bound_fingerprint(folder: Path) -> str | None:
    path = folder / BINDING_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["base_fingerprint"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DeserializationError(f"{path} does not hold a base_fingerprint: {exc}") from exc


def _function_fields(schema: AdapterSchema) -> dict[str, Any]:
    """The LoraConfig fields that decide the function; pattern keys are escaped module names, so peft's regex
    match (get_pattern_key) finds exactly the module they were resolved for."""
    return {
        "r": schema.rank,
        "lora_alpha": schema.alpha,
        "target_modules": list(schema.target_modules),
        "use_rslora": schema.use_rslora,
        "rank_pattern": {re.escape(name): rank for name, rank in schema.rank_pattern},
        "alpha_pattern": {re.escape(name): alpha for name, alpha in schema.alpha_pattern},
    }


def _lora_config(config: Mapping[str, Any]) -> LoraConfig:
    """peft's own object for a checked config dict, so matching uses peft's rules; its own checks apply."""
    fields = {name: value for name, value in config.items() if name not in ("peft_type", "runtime_config")}
    try:
        return LoraConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"peft refuses this LoraConfig: {exc}") from exc


def _targets(config: LoraConfig, key: str) -> bool:
    """Whether peft adapts the module `key` under `config` ("all-linear" is expanded by peft against the
    base, which the server checks: every linear module qualifies here)."""
    targets: object = config.target_modules  # peft's __post_init__ turns the annotated list into a set
    if targets == "all-linear" or targets == {"all-linear"}:
        return True
    found = check_target_module_exists(config, key)
    return bool(found) and not isinstance(found, _ExcludedModule)
