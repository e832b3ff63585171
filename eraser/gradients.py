"""Per-sample gradients of the training loss, and the request vector b built from them.

LLMEraser (Ding et al., arXiv:2412.00383, eq. 6) moves the optimum by delta = (H + lambda I)^-1 b with
b = (1/n) * sum(grad loss(z_old) - grad loss(z_new)). We normalise by the training-set size *after* the
request, n', because the Newton step on the new objective (1/n') * sum over the new set is then exact to
second order (with n, every removal would also be mis-scaled by n/n').

Per-sample gradients use torch.func (vmap over grad) when the objective's forward allows it, and a loop of
single-sample grads otherwise (sdpa attention builds its mask with data-dependent control flow). b needs only
their sum, which is the gradient of the summed loss: one batched backward per chunk (`summed_gradient`)
instead of one per sample (on SmolLM2 with sdpa, per-sample gradients were a loop taking 3.4 s of a 12 s request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.func import grad, vmap
from tqdm.auto import tqdm

from loravault.core import Sample

from .objective import Objective, TokenBatch
from .requests import ErasureRequest

__all__ = ["RequestGradients", "per_sample_gradients", "request_gradients", "request_vector", "summed_gradient"]


def per_sample_gradients(
    objective: Objective,
    theta: torch.Tensor,
    samples: Sequence[Sample],
    *,
    chunk: int = 8,
    progress: bool = True,
) -> torch.Tensor:
    """Gradient of each sample's loss at theta: (k, P), float32, on the objective's device."""
    rows = []
    starts = range(0, len(samples), chunk)
    shown = progress and len(starts) > 1  # disable=None: a bar on a terminal only, no carriage returns in a log
    for start in tqdm(starts, desc="per-sample gradients", disable=None if shown else True, leave=False):
        batch = objective.render(samples[start : start + chunk]).to(objective.device)
        rows.append(_chunk_gradients(objective, theta, batch))
    return torch.cat(rows) if rows else theta.new_zeros((0, theta.numel()))


def _chunk_gradients(objective: Objective, theta: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    parts = (batch.targets, batch.mask, batch.positions, batch.position_targets)  # positions may be None

    def one_loss(params: torch.Tensor, inputs: dict[str, torch.Tensor], *row: torch.Tensor | None) -> torch.Tensor:
        single = TokenBatch({k: v.unsqueeze(0) for k, v in inputs.items()}, *(None if t is None else t.unsqueeze(0) for t in row))  # type: ignore[arg-type]  # None only where `batch` has None
        return objective.per_sample_loss(params, single)[0]

    if objective.supports_vmap:
        in_dims = (None, 0, *(None if t is None else 0 for t in parts))
        return vmap(grad(one_loss), in_dims=in_dims)(theta, batch.inputs, *parts)  # (B, P)
    rows = [
        grad(one_loss)(theta, {k: v[i] for k, v in batch.inputs.items()}, *(None if t is None else t[i] for t in parts))
        for i in range(len(batch))
    ]
    return torch.stack(rows)  # (B, P)


def summed_gradient(
    objective: Objective, theta: torch.Tensor, samples: Sequence[Sample], *, chunk: int = 8, progress: bool = True
) -> torch.Tensor:
    """Gradient at theta of the sum of the samples' losses, (P,): one backward per chunk of samples.

    Equal to summing `per_sample_gradients` (each sample's loss is its own mean over its answer tokens, and
    padding is masked out of both the attention and the loss).
    """
    total = torch.zeros_like(theta)
    starts = range(0, len(samples), chunk)
    shown = progress and len(starts) > 1
    for start in tqdm(starts, desc="request gradients", disable=None if shown else True, leave=False):
        batch = objective.render(samples[start : start + chunk]).to(objective.device)
        total += grad(lambda params: objective.per_sample_loss(params, batch).sum())(theta)
    return total


@dataclass(frozen=True)
class RequestGradients:
    """The summed gradients of a request's old and new sample versions, (P,) each."""

    old_sum: torch.Tensor
    new_sum: torch.Tensor
    old_count: int  # old sample versions summed into old_sum

    def vector(self, *, size_after: int) -> torch.Tensor:
        """b = (1/n') * (sum of old-version gradients - sum of new-version gradients)."""
        return (self.old_sum - self.new_sum) / size_after

    def forget_slope(self, direction: torch.Tensor) -> float | None:
        """d/ds of the old versions' mean loss at theta + s * direction, s = 0; None when nothing is forgotten.

        The calibrated step starts its search from it (see calibrate_step's `slope`).
        """
        if not self.old_count:
            return None
        return float((self.old_sum / self.old_count).double() @ direction.double())


def request_gradients(
    objective: Objective, theta: torch.Tensor, request: ErasureRequest, *, chunk: int = 8, progress: bool = True
) -> RequestGradients:
    """Old and new versions rendered with the same template by the same objective, differentiated at theta."""
    old, new = (summed_gradient(objective, theta, samples, chunk=chunk, progress=progress)
                for samples in (request.old_samples, request.new_samples))
    return RequestGradients(old, new, old_count=len(request.old_samples))


def request_vector(
    objective: Objective,
    theta: torch.Tensor,
    request: ErasureRequest,
    *,
    size_after: int,
    chunk: int = 8,
    progress: bool = True,
) -> torch.Tensor:
    """b = (1/n') * (sum of old-version gradients - sum of new-version gradients), (P,)."""
    return request_gradients(objective, theta, request, chunk=chunk, progress=progress).vector(size_after=size_after)
