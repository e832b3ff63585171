"""One model's measurements on every evaluation set: per-sample loss, exact match, answer distributions.

Exact match is greedy recall computed in one forward pass: greedy decoding reproduces an answer exactly when,
with the answer's own tokens fed back (teacher forcing), the argmax at every answer position is the answer's
next token, because each greedy step then sees the same prefix. The end-of-sequence token is not required.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from loravault.core import IGNORE_INDEX, Sample
from loravault.eraser import lora_objective, token_losses

from .metrics import kl_from_reference, membership_auc

__all__ = ["EvalSets", "Measurement", "measure", "summarize"]


@dataclass(frozen=True)
class EvalSets:
    """What a model is measured on: named sample sets, which of them get answer distributions, the MIA pair."""

    sets: Mapping[str, Sequence[Sample]]
    kl_sets: tuple[str, ...]  # answer distributions kept for KL against the retrained model
    members: str  # set name whose membership is attacked (the forgotten samples)
    nonmembers: str  # never-trained samples of the same generator (not the calibration reference)
    text: torch.Tensor  # (W, L) general-text token windows


@dataclass(frozen=True)
class Measurement:
    """Per-sample losses and exact matches per set, answer log-probabilities for kl_sets, text perplexity."""

    losses: dict[str, torch.Tensor]  # (n,)
    exact: dict[str, torch.Tensor]  # (n,) bool
    logprobs: dict[str, torch.Tensor]  # (N positions, V)
    perplexity: float


@torch.no_grad()
def measure(model: nn.Module, tokenizer: PreTrainedTokenizerBase, sets: EvalSets, *, max_length: int, batch_size: int) -> Measurement:
    """Forward passes only, in eval mode; the model is not modified."""
    objective = lora_objective(model, tokenizer, max_length=max_length)
    losses, exact, logprobs = {}, {}, {}
    for name, samples in sets.sets.items():
        rows_loss, rows_exact, rows_lp = [], [], []
        for start in range(0, len(samples), batch_size):
            batch = objective.render(samples[start : start + batch_size])
            logits = model(**batch.inputs).logits  # (B, T, V)
            rows_loss.append(token_losses(logits, batch.targets))
            answer = (batch.targets != IGNORE_INDEX) & (batch.targets != tokenizer.eos_token_id)  # (B, T)
            rows_exact.append(((logits.argmax(-1) == batch.targets) | ~answer).all(-1))
            if name in sets.kl_sets:
                rows_lp.append(logits[batch.targets != IGNORE_INDEX].float().log_softmax(-1))  # (N, V)
        losses[name], exact[name] = torch.cat(rows_loss), torch.cat(rows_exact)
        if rows_lp:
            logprobs[name] = torch.cat(rows_lp)
    return Measurement(losses, exact, logprobs, _perplexity(model, sets.text, batch_size=batch_size))


def _perplexity(model: nn.Module, windows: torch.Tensor, *, batch_size: int) -> float:
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        ids = windows[start : start + batch_size]  # (B, L)
        logits = model(input_ids=ids).logits[:, :-1]  # (B, L-1, V)
        nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
        total, count = total + float(nll), count + ids[:, 1:].numel()
    return math.exp(total / count)


def summarize(measurement: Measurement, sets: EvalSets, *, retrained: Measurement | None) -> dict[str, float]:
    """Flat numbers: <set>_loss, <set>_recall (percent), kl_<set> (against the retrained model), mia_auc, perplexity."""
    out: dict[str, float] = {}
    for name in sets.sets:
        out[f"{name}_loss"] = float(measurement.losses[name].mean())
        out[f"{name}_recall"] = 100.0 * float(measurement.exact[name].float().mean())
    if retrained is not None:
        for name in sets.kl_sets:
            out[f"kl_{name}"] = kl_from_reference(retrained.logprobs[name], measurement.logprobs[name])
    out["mia_auc"] = membership_auc(measurement.losses[sets.members], measurement.losses[sets.nonmembers])
    out["perplexity"] = measurement.perplexity
    return out
