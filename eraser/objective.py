"""The training objective as a pure function of flat parameters: per-sample mean token NLL on scored tokens.

Everything in the eraser (gradients, curvature, calibration) goes through `Objective`, so a LoRA adapter on a
causal language model and a logistic-regression head on fixed features exercise the same code. The loss is
the one the adapter was trained with: for each sample, the mean negative log-likelihood over its scored
(answer) tokens; the training objective is the mean of that over samples.

    >>> objective = lora_objective(peft_model, tokenizer, device="cpu")  # doctest: +SKIP
    >>> objective.per_sample_loss(objective.theta(), objective.render(samples))  # (B,)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.func import functional_call
from transformers import PreTrainedTokenizerBase

from loravault.core import IGNORE_INDEX, InvalidArgumentError, Sample, render_batch

from .layout import ParamLayout

__all__ = ["DecoderSplit", "Objective", "TokenBatch", "lora_objective", "scored_positions", "token_losses"]


@dataclass(frozen=True)
class TokenBatch:
    """Model inputs with targets aligned to the model's logits.

    `positions` (B, K) lists each row's scored positions (a shorter row repeats its last one), with their targets
    in `position_targets` (IGNORE_INDEX where repeated): an objective that can, computes logits only there.
    """

    inputs: dict[str, torch.Tensor]  # keyword arguments of the module's forward, each (B, ...)
    targets: torch.Tensor  # (B, T) long, IGNORE_INDEX where a position is not scored
    mask: torch.Tensor  # (B, T) 1 at real positions, 0 at padding
    positions: torch.Tensor | None = None  # (B, K) long
    position_targets: torch.Tensor | None = None  # (B, K) long

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def logit_targets(self) -> torch.Tensor:
        """The targets of `Objective.logits`' rows: (B, K) at the scored positions when listed, else (B, T)."""
        return self.targets if self.position_targets is None else self.position_targets

    def to(self, device: str | torch.device) -> TokenBatch:
        moved = [None if t is None else t.to(device) for t in (self.positions, self.position_targets)]
        return TokenBatch({k: v.to(device) for k, v in self.inputs.items()}, self.targets.to(device), self.mask.to(device), *moved)


def scored_positions(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's scored positions (B, K) and their targets (B, K); K is the most any row scores."""
    scored = targets != IGNORE_INDEX  # (B, T)
    width = max(int(scored.sum(-1).max()), 1)
    positions = torch.zeros(targets.shape[0], width, dtype=torch.long)
    picked = torch.full((targets.shape[0], width), IGNORE_INDEX, dtype=torch.long)
    for row in range(targets.shape[0]):
        where = scored[row].nonzero().squeeze(-1)
        if len(where):
            positions[row] = where[-1]
            positions[row, : len(where)] = where
            picked[row, : len(where)] = targets[row, where]
    return positions, picked


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample mean NLL over scored positions: logits (B, T, V), targets (B, T) -> (B,)."""
    B, T, V = logits.shape
    nll = nn.functional.cross_entropy(
        logits.reshape(B * T, V), targets.reshape(B * T).clamp_min(0), reduction="none"
    ).reshape(B, T)  # (B, T)
    scored = (targets != IGNORE_INDEX).to(logits.dtype)  # (B, T)
    return (nll * scored).sum(-1) / scored.sum(-1)


@dataclass(frozen=True)
class DecoderSplit:
    """A causal LM as its decoder (hidden states) and its output head, with nothing between the two.

    Why: on SmolLM2 the head (576 -> 49,152) is a fifth of a forward's work at every position, and a question's
    answer is two or three of its twenty-odd positions; curvature products also carry (B, T, V) tensors.
    """

    decoder: nn.Module
    prefix: str  # the decoder's name inside the objective's module, with the trailing dot
    head: nn.Module

    def hidden(self, params: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states (B, T, H) with `params` (live names, all under `prefix`) in place."""
        own = {name[len(self.prefix):]: tensor for name, tensor in params.items()}
        out = functional_call(self.decoder, own, args=(), kwargs=inputs)
        return out if isinstance(out, torch.Tensor) else out.last_hidden_state


def _pick(rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """rows (B, T, D) at positions (B, K) -> (B, K, D)."""
    return rows.gather(1, positions.unsqueeze(-1).expand(*positions.shape, rows.shape[-1]))


@dataclass(frozen=True)
class Objective:
    """A module, the trainable tensors the eraser moves, and how samples become batches.

    `names` are the public (adapter) tensor names in sorted order; `live_names` the same tensors' names in
    `module.named_parameters()`. Parameters are passed explicitly (torch.func), so the module's own weights
    are never modified by the eraser.
    """

    module: nn.Module
    names: tuple[str, ...]
    live_names: tuple[str, ...]
    render: Callable[[Sequence[Sample]], TokenBatch]
    device: torch.device
    supports_vmap: bool  # False when the forward has data-dependent control flow (e.g. sdpa mask building)
    split: DecoderSplit | None = None  # a causal LM as decoder then head: logits only where the loss scores

    def __post_init__(self) -> None:
        known = dict(self.module.named_parameters())
        missing = [n for n in self.live_names if n not in known]
        if missing or len(self.names) != len(self.live_names):
            raise InvalidArgumentError(f"objective names parameter {missing[:1]} that the module does not have")

    @cached_property
    def layout(self) -> ParamLayout:
        """Flat ordering, keyed by live names (what functional_call needs)."""
        params = dict(self.module.named_parameters())
        return ParamLayout(self.live_names, tuple(tuple(params[n].shape) for n in self.live_names))

    def theta(self) -> torch.Tensor:
        """The module's current trainable parameters as one float32 flat vector on the objective's device."""
        params = dict(self.module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.live_names]).to(self.device, torch.float32)

    def public(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector as tensors under the public (adapter) names."""
        live = self.layout.unflatten(flat)
        return {public: live[name] for public, name in zip(self.names, self.live_names)}

    def logits(self, theta: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Logits aligned with batch.logit_targets, at parameters theta (P,): (B, K, V) or (B, T, V)."""
        params = self.layout.unflatten(theta)
        if batch.positions is not None and self.split is not None:
            hidden = self.split.hidden(params, batch.inputs)  # (B, T, H)
            return self.split.head(_pick(hidden, batch.positions))
        out = functional_call(self.module, params, args=(), kwargs=batch.inputs)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        return logits if batch.positions is None else _pick(logits, batch.positions)

    def per_sample_loss(self, theta: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Per-sample training loss (B,)."""
        return token_losses(self.logits(theta, batch), batch.logit_targets)

    def linear_modules(self) -> dict[str, str]:
        """Live parameter name -> name of the nn.Linear (without bias) whose weight it is; for EK-FAC."""
        found: dict[str, str] = {}
        for module_name, module in self.module.named_modules():
            if isinstance(module, nn.Linear) and module.bias is None:
                weight = f"{module_name}.weight" if module_name else "weight"
                if weight in self.live_names:
                    found[weight] = module_name
        return found


def lora_objective(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int = 128,
    device: str | torch.device = "cpu",
) -> Objective:
    """The objective of a peft LoRA model: its lora_A/lora_B weights, rendered with core's one template.

    The model is put in eval mode (no dropout), as training's loss is compared against in eval mode too.
    Raises InvalidArgumentError when the model has no trainable LoRA weights.
    """
    model.eval()
    live = sorted(n for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n)
    if not live:
        raise InvalidArgumentError("model has no LoRA weights (lora_A/lora_B): wrap it with peft first")
    adapter = getattr(model, "active_adapter", "default")
    public = [n.replace(f".{adapter}.weight", ".weight") for n in live]
    order = sorted(range(len(live)), key=lambda i: public[i])
    attention = getattr(getattr(model, "config", None), "_attn_implementation", "eager")

    def render(samples: Sequence[Sample]) -> TokenBatch:
        return _render_lm(tokenizer, samples, max_length=max_length)

    return Objective(
        module=model,
        names=tuple(public[i] for i in order),
        live_names=tuple(live[i] for i in order),
        render=render,
        device=torch.device(device),
        supports_vmap=attention == "eager",
        split=_decoder_split(model, live),
    )


def _decoder_split(model: nn.Module, live: Sequence[str]) -> DecoderSplit | None:
    """The model's decoder and head when every trained weight is in the decoder and head(decoder(x)) is exactly
    the model's logits (checked on a few tokens: a soft-cap or scale between the two would make it None)."""
    # duck-typed: PeftModel and PreTrainedModel have these methods, torch types other attributes as tensors
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None  # type: ignore[operator]
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None  # type: ignore[operator]
    if not isinstance(decoder, nn.Module) or not isinstance(head, nn.Module) or decoder is base:
        return None
    prefix = next((name + "." for name, module in model.named_modules() if module is decoder), None)
    if prefix is None or not all(name.startswith(prefix) for name in live):
        return None
    split = DecoderSplit(decoder, prefix, head)
    device = next(model.parameters()).device
    probe = {"input_ids": torch.tensor([[0, 1, 2, 3]], device=device), "attention_mask": torch.ones(1, 4, dtype=torch.long, device=device)}
    with torch.no_grad():
        out = model(**probe)
        full = out if isinstance(out, torch.Tensor) else out.logits
        params = dict(model.named_parameters())
        picked = head(split.hidden({name: params[name] for name in live}, probe))
    return split if torch.allclose(picked, full, rtol=1e-4, atol=1e-5) else None


def _render_lm(tokenizer: PreTrainedTokenizerBase, samples: Sequence[Sample], *, max_length: int) -> TokenBatch:
    """Core's template, with labels shifted so position t scores token t + 1 (as the model's own loss does)."""
    rendered = render_batch(tokenizer, samples, max_length=max_length)
    labels = rendered.labels  # (B, T)
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    empty = [s.id for s, row in zip(samples, targets) if not bool((row != IGNORE_INDEX).any())]
    if empty:
        raise InvalidArgumentError(
            f"sample {empty[0]!r} has no answer tokens within max_length={max_length}: raise max_length"
        )
    inputs = {"input_ids": rendered.input_ids, "attention_mask": rendered.attention_mask}
    return TokenBatch(inputs, targets, rendered.attention_mask, *scored_positions(targets))
