"""The part of a Llama-architecture causal LM the engine reads, as Protocols: the step model calls these modules
one by one instead of the model's own forward.

transformers' LlamaForCausalLM has this shape; torch types every submodule reached by attribute as
`Tensor | Module`, so `as_llama` states the shape once, where the engine takes the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, cast

import torch
from transformers import LlamaConfig

__all__ = ["LlamaLike", "as_llama"]

_Map = Callable[[torch.Tensor], torch.Tensor]


class Attention(Protocol):
    q_proj: torch.nn.Linear
    k_proj: torch.nn.Linear
    v_proj: torch.nn.Linear
    o_proj: torch.nn.Linear


class Mlp(Protocol):
    gate_proj: torch.nn.Linear
    up_proj: torch.nn.Linear
    down_proj: torch.nn.Linear
    act_fn: _Map


class DecoderLayer(Protocol):
    self_attn: Attention
    mlp: Mlp
    input_layernorm: _Map
    post_attention_layernorm: _Map


class Decoder(Protocol):
    embed_tokens: _Map
    rotary_emb: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (cos, sin)
    layers: Sequence[DecoderLayer]
    norm: _Map


class LlamaLike(Protocol):
    config: LlamaConfig
    model: Decoder
    lm_head: _Map


def as_llama(model: torch.nn.Module) -> LlamaLike:
    """`model` seen as a Llama module tree (checked at run time by StepModel: config.model_type is "llama")."""
    return cast(LlamaLike, model)
