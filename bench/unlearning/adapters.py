"""Saving and restoring the LoRA weights every method starts from, so all methods see the same original adapter."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["load_lora_state", "lora_state"]


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's LoRA weights under their live parameter names."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}


def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` back into the model's LoRA weights in place (every name must exist)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
