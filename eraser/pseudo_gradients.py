"""One pass over the curvature sample: per-sample pseudo-gradients and Kronecker factors of every linear layer.

The Gauss-Newton matrix of a softmax cross-entropy is the Fisher of the model's own predictive distribution:
with labels drawn from the model, E[g g'] = J' (diag p - p p') J. Drawing one label per scored token and
weighting sample i's summed token losses by 1/sqrt(T_i) makes E[g_i g_i'] equal the Gauss-Newton matrix of its
*mean* token loss (cross-token terms vanish in expectation). So `(1/m) sum g_i g_i'` is an unbiased Monte-Carlo
estimate of the operator `CurvatureOperator` applies exactly (Martens & Grosse, arXiv:1503.05671, sec. 5).

Labels are drawn with a generator seeded per sample id, so a sample's pseudo-gradient is the same whenever it is
recomputed (EK-FAC uses this to take removed samples back out of its eigenvalues).

Per linear layer y = W x, hooks record inputs x (B, T, d_in) and output gradients g (B, T, d_out); the
per-sample weight gradient is sum_t g_t x_t' and the Kronecker factors are the token means of x x' and g g'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from typing import cast

import torch
from torch import nn
from tqdm.auto import tqdm

from loravault.core import IGNORE_INDEX, InvalidArgumentError, Sample

from .curvature import sample_seed
from .objective import Objective, TokenBatch, token_losses

__all__ = ["PseudoGradients", "collect_pseudo_gradients"]


@dataclass(frozen=True)
class PseudoGradients:
    """What one pass collects, per linear layer keyed by live parameter name."""

    gradients: dict[str, torch.Tensor]  # (m, d_out, d_in) per-sample pseudo-gradients
    input_covariance: dict[str, torch.Tensor]  # (d_in, d_in) token mean of x x', float64
    output_covariance: dict[str, torch.Tensor]  # (d_out, d_out) token mean of g g', float64
    ids: tuple[str, ...]  # the samples, in row order

    def flat(self, objective: Objective) -> torch.Tensor:
        """All layers' per-sample gradients as one (m, P) matrix in the objective's flat order."""
        return objective.layout.flatten(self.gradients)

    def rows(self, ids: Sequence[str]) -> PseudoGradients:
        """The pseudo-gradients of `ids` (each must be one of `self.ids`), without covariances.

        Rows are the ones collected, so taking them back out of EK-FAC (`EkfacFactors.without`) needs no new pass.
        """
        where = {sample_id: row for row, sample_id in enumerate(self.ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise InvalidArgumentError(f"sample {missing[0]!r} has no collected pseudo-gradient")
        index = torch.tensor([where[i] for i in ids], dtype=torch.long)
        return PseudoGradients(
            gradients={name: g[index.to(g.device)] for name, g in self.gradients.items()},
            input_covariance={}, output_covariance={}, ids=tuple(ids),
        )


def collect_pseudo_gradients(
    objective: Objective,
    theta: torch.Tensor,
    samples: Sequence[Sample],
    *,
    seed: int,
    batch_size: int = 8,
    with_covariances: bool = True,
    progress: bool = True,
) -> PseudoGradients:
    """One forward and one backward per batch; raises InvalidArgumentError when a parameter is not a linear weight."""
    linears = objective.linear_modules()
    uncovered = [n for n in objective.live_names if n not in linears]
    if uncovered:
        raise InvalidArgumentError(f"EK-FAC covers weights of bias-free nn.Linear layers only; {uncovered[0]} is not one")
    layers = {name: cast(nn.Linear, objective.module.get_submodule(module)) for name, module in linears.items()}
    grads: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    cov_in = {name: torch.zeros(m.in_features, m.in_features, dtype=torch.float64, device=theta.device) for name, m in layers.items()}
    cov_out = {name: torch.zeros(m.out_features, m.out_features, dtype=torch.float64, device=theta.device) for name, m in layers.items()}
    tokens = 0
    starts = range(0, len(samples), batch_size)
    for start in tqdm(starts, desc="curvature pass", disable=None if progress else True, leave=False):
        chunk = samples[start : start + batch_size]
        batch = objective.render(chunk).to(objective.device)
        captured = _backward_with_hooks(objective, theta, batch, layers, chunk, seed=seed)
        mask = batch.mask.to(torch.float64)  # (B, T)
        tokens += int(mask.sum())
        for name, (x, g) in captured.items():
            grads[name].append(torch.einsum("bto,bti->boi", g, x))  # (B, d_out, d_in)
            if with_covariances:
                xm, gm = x.double() * mask.unsqueeze(-1), g.double() * mask.unsqueeze(-1)
                cov_in[name] += torch.einsum("bti,btj->ij", xm, x.double())  # (d_in, d_in)
                cov_out[name] += torch.einsum("bto,btp->op", gm, g.double())  # (d_out, d_out)
    return PseudoGradients(
        gradients={name: torch.cat(rows) for name, rows in grads.items()},
        input_covariance={name: c / max(tokens, 1) for name, c in cov_in.items()},
        output_covariance={name: c / max(tokens, 1) for name, c in cov_out.items()},
        ids=tuple(s.id for s in samples),
    )


def _backward_with_hooks(
    objective: Objective,
    theta: torch.Tensor,
    batch: TokenBatch,
    layers: Mapping[str, nn.Module],
    samples: Sequence[Sample],
    *,
    seed: int,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Inputs (B, T, d_in) and output gradients (B, T, d_out) of every layer for the sampled-label loss."""
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, layer in layers.items():

        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, name: str = name) -> None:
            inputs[name] = args[0].detach()
            out.register_hook(lambda grad, name=name: outputs.__setitem__(name, grad.detach()))

        handles.append(layer.register_forward_hook(hook))
    try:
        theta = theta.detach().requires_grad_(True)
        logits = objective.logits(theta, batch)  # (B, K, V) at scored positions (or (B, T, V))
        sampled = _sample_labels(logits.detach(), batch.logit_targets, samples, seed=seed)
        scored = (batch.targets != IGNORE_INDEX).sum(-1).to(logits.dtype)  # (B,)
        loss = (token_losses(logits, sampled) * scored.sqrt()).sum()  # sum_i (1/sqrt(T_i)) sum_t CE
        torch.autograd.grad(loss, theta)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (inputs[name], outputs[name]) for name in layers}


def _sample_labels(logits: torch.Tensor, targets: torch.Tensor, samples: Sequence[Sample], *, seed: int) -> torch.Tensor:
    """One label per scored position from the model's own softmax; row i uses a generator seeded by its id."""
    sampled = torch.full_like(targets, IGNORE_INDEX)
    probs = logits.float().softmax(-1)  # (B, T, V)
    for row, sample in enumerate(samples):
        where = targets[row] != IGNORE_INDEX  # (T,)
        generator = torch.Generator(device=logits.device).manual_seed(sample_seed(seed, sample.id))
        sampled[row, where] = torch.multinomial(probs[row, where], 1, generator=generator).squeeze(-1)
    return sampled
