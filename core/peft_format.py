"""PEFT's own on-disk format (adapter_config.json + adapter_model.safetensors), in and out.

An exported folder loads with PeftModel.from_pretrained, vLLM or LoRAX as it is. The base fingerprint rides in
a third file, loravault.json, which those loaders never open (an extra key in adapter_config.json would make
peft warn on every load).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import PreTrainedModel

from .adapter_schema import AdapterSchema
from .errors import DeserializationError, InvalidArgumentError, NotFoundError
from .tensors import decode_tensors, encode_tensors

__all__ = [
    "BINDING_FILE",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "adapter_from_peft_model",
    "lora_config_for",
    "new_peft_model",
    "peft_model_with_adapter",
    "read_peft_folder",
    "write_peft_folder",
]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
BINDING_FILE = "loravault.json"


def lora_config_for(schema: AdapterSchema, *, base_name: str = "") -> LoraConfig:
    """The peft LoraConfig that reproduces the schema (no dropout: serving and erasure run in eval mode)."""
    return LoraConfig(
        r=schema.rank,
        lora_alpha=schema.alpha,
        target_modules=list(schema.target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_name or None,
    )


def adapter_from_peft_model(model: PeftModel, *, base_fingerprint: str) -> tuple[AdapterSchema, dict[str, torch.Tensor]]:
    """The schema and tensors of a PeftModel's active LoRA adapter, in PEFT's saved names."""
    config = model.peft_config[model.active_adapter]
    if not isinstance(config, LoraConfig):
        raise InvalidArgumentError(f"adapter {model.active_adapter!r} is {type(config).__name__}, not LoRA")
    if config.bias != "none" or getattr(config, "modules_to_save", None):
        raise InvalidArgumentError("only LoRA adapters with bias='none' and no modules_to_save are supported")
    tensors = {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(model).items()}
    targets = config.target_modules
    target_modules = tuple(sorted(targets)) if not isinstance(targets, str) else (targets,)
    schema = AdapterSchema.from_tensors(
        tensors, rank=int(config.r), alpha=float(config.lora_alpha), target_modules=target_modules,
        base_fingerprint=base_fingerprint,
    )
    return schema, tensors


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
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
    if unexpected:
        raise InvalidArgumentError(f"adapter tensor {unexpected[0]} matches no module of the base model")
    return model.eval()


def write_peft_folder(
    folder: Path, schema: AdapterSchema, tensors: dict[str, torch.Tensor], *, base_name: str = ""
) -> None:
    """Write PEFT's two files; the base fingerprint is kept as an extra config key."""
    folder.mkdir(parents=True, exist_ok=True)
    config = lora_config_for(schema, base_name=base_name).to_dict()
    config["target_modules"] = sorted(config["target_modules"])
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
    if config.get("peft_type") != "LORA":
        raise InvalidArgumentError(f"{config_path}: peft_type is {config.get('peft_type')!r}, only LORA is supported")
    fingerprint = _bound_fingerprint(folder) or base_fingerprint
    if not fingerprint:
        raise InvalidArgumentError(f"{folder} names no base fingerprint; pass the base it was trained on")
    tensors = decode_tensors(weights_path.read_bytes())
    targets = config.get("target_modules") or []
    schema = AdapterSchema.from_tensors(
        tensors, rank=int(config["r"]), alpha=float(config["lora_alpha"]),
        target_modules=tuple(sorted([targets] if isinstance(targets, str) else targets)),
        base_fingerprint=fingerprint,
    )
    return schema, tensors


def _bound_fingerprint(folder: Path) -> str | None:
    path = folder / BINDING_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["base_fingerprint"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DeserializationError(f"{path} does not hold a base_fingerprint: {exc}") from exc
