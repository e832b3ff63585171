"""Curvature operators over a fixed sample of training data: v -> Gv (Gauss-Newton) and v -> Hv (exact).

Both average over samples the curvature of each sample's mean token NLL, matching the training objective.
An operator takes a flat vector (P,) or a stack of them (k, P) (vmapped; used to build dense matrices) and
returns the same shape.

- Gauss-Newton (Schraudolph 2002; Martens, arXiv:1412.1193, sec. 8): G = J' H_L J with J the Jacobian of
  the logits and H_L = diag(p) - p p' the softmax cross-entropy Hessian. Positive semi-definite; computed as
  a forward-mode jvp, the closed-form H_L, then a vjp.
- Hessian: reverse-over-reverse (double backward). Exact, indefinite away from a minimum.

NOTE: both need a forward that supports forward-mode AD or double backward: on CPU load the base with
attn_implementation="eager" (sdpa has neither in torch 2.13). Building an operator checks this up front.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import torch
from torch.func import grad, jvp, vjp, vmap

from loravault.core import FailedPreconditionError, IGNORE_INDEX, Sample

from .objective import Objective, TokenBatch

__all__ = ["CurvatureOperator", "curvature_sample", "sample_seed"]


def sample_seed(seed: int, sample_id: str) -> int:
    """A per-sample seed that does not depend on where the sample sits in any list."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:8], "little") >> 1


def curvature_sample(train: Sequence[Sample], *, size: int, seed: int) -> list[Sample]:
    """A fixed, seeded subset of the training data (all of it when it is smaller), in a stable order."""
    ordered = sorted(train, key=lambda s: s.id)
    if len(ordered) <= size:
        return ordered
    return sorted(random.Random(seed).sample(ordered, size), key=lambda s: s.id)


class CurvatureOperator:
    """The mean curvature of the per-sample loss over `samples`, at theta: a callable v -> Gv.

    Raises FailedPreconditionError (at construction) when the model cannot take the needed derivatives.
    """

    def __init__(
        self,
        objective: Objective,
        theta: torch.Tensor,
        samples: Sequence[Sample],
        *,
        kind: str = "gauss_newton",
        batch_size: int = 8,
    ) -> None:
        if not samples:
            raise FailedPreconditionError("a curvature operator needs at least one sample")
        if not objective.supports_vmap:
            raise FailedPreconditionError(
                "curvature products need forward-mode AD or double backward, which sdpa attention lacks: "
                'load the base with attn_implementation="eager"'
            )
        self.objective, self.theta, self.kind, self.count = objective, theta, kind, len(samples)
        self.batches = [
            objective.render(samples[i : i + batch_size]).to(objective.device) for i in range(0, len(samples), batch_size)
        ]
        self.products = 0  # how many single-vector products were taken: the unit of cost in reports
        self._product = self._gauss_newton if kind == "gauss_newton" else self._hessian

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1 if v.dim() == 1 else v.shape[0]
        if v.dim() == 1:
            return sum(self._product(v, batch) for batch in self.batches) / self.count
        return sum(vmap(self._product, in_dims=(0, None))(v, batch) for batch in self.batches) / self.count

    def batch_product(self, v: torch.Tensor, index: int) -> torch.Tensor:
        """The mean curvature of one batch (batches taken in turn): LiSSA's and LLMEraser's stochastic product."""
        batch = self.batches[index % len(self.batches)]
        self.products += 1
        return self._product(v, batch) / len(batch)

    def _gauss_newton(self, v: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Sum over the batch of J_i' H_i J_i v, with H_i the Hessian of sample i's mean NLL in its logits."""

        def logits(theta: torch.Tensor) -> torch.Tensor:
            return self.objective.logits(theta, batch)

        out, jv = jvp(logits, (self.theta,), (v,))  # (B, T, V) each
        probs = out.softmax(-1)
        scored = (batch.targets != IGNORE_INDEX).to(out.dtype)  # (B, T)
        weight = (scored / scored.sum(-1, keepdim=True)).unsqueeze(-1)  # (B, T, 1): the per-sample token mean
        hjv = weight * probs * (jv - (probs * jv).sum(-1, keepdim=True))  # (diag p - p p') Jv, (B, T, V)
        _, pullback = vjp(logits, self.theta)
        return pullback(hjv.detach())[0]

    def _hessian(self, v: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Sum over the batch of H_i v by double backward."""

        def total(theta: torch.Tensor) -> torch.Tensor:
            return self.objective.per_sample_loss(theta, batch).sum()

        _, pullback = vjp(grad(total), self.theta)
        return pullback(v)[0]
