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
from collections.abc import Callable, Sequence

from typing import cast

import torch
from torch.func import grad, jvp, vjp, vmap

from loravault.core import FailedPreconditionError, IGNORE_INDEX, Sample

from .linearization import Linearization, linearize_gauss_newton, linearize_hessian
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


def _output_hessian(logits: torch.Tensor, targets: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """u -> H_L u for each sample's mean token NLL: (diag p - p p') u weighted by 1 / scored tokens.

    `targets` are the logits' own (batch.logit_targets): (B, K) at scored positions, or (B, T).
    """
    probs = logits.detach().softmax(-1)
    scored = (targets != IGNORE_INDEX).to(logits.dtype)
    weighted = probs * (scored / scored.sum(-1, keepdim=True)).unsqueeze(-1)  # the per-sample token mean folded in
    return lambda u: weighted * (u - (probs * u).sum(-1, keepdim=True))


class CurvatureOperator:
    """The mean curvature of the per-sample loss over `samples`, at theta: a callable v -> Gv.

    `graph_budget_bytes` bounds the memory of kept graphs (0: keep none and recompute the forward per product,
    right for an operator whose batches are each used once). Raises FailedPreconditionError (at construction)
    when the model cannot take the needed derivatives.
    """

    def __init__(
        self,
        objective: Objective,
        theta: torch.Tensor,
        samples: Sequence[Sample],
        *,
        kind: str = "gauss_newton",
        batch_size: int = 8,
        graph_budget_bytes: int = 0,
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
        # kept graphs (see linearization.py): a batch's graph is kept on its first product while the budget lasts;
        # None marks a batch that did not fit, which is then recomputed per product (cheaper than rebuilding)
        self.graph_budget_bytes = graph_budget_bytes
        self.kept_bytes = 0
        self._kept: dict[int, Linearization | None] = {}

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1 if v.dim() == 1 else v.shape[0]
        if v.dim() == 1:
            return cast(torch.Tensor, sum(self._batch(v, index) for index in range(len(self.batches)))) / self.count
        return cast(torch.Tensor, sum(vmap(self._product, in_dims=(0, None))(v, batch) for batch in self.batches)) / self.count

    @property
    def kept_batches(self) -> int:
        """How many batches answer their products from a kept graph."""
        return sum(kept is not None for kept in self._kept.values())

    def batch_product(self, v: torch.Tensor, index: int) -> torch.Tensor:
        """The mean curvature of one batch (batches taken in turn): LiSSA's and LLMEraser's stochastic product."""
        index %= len(self.batches)
        self.products += 1
        return self._batch(v, index) / len(self.batches[index])

    def _batch(self, v: torch.Tensor, index: int) -> torch.Tensor:
        """Batch `index`'s summed product, through its kept graph when it has (or can get) one."""
        if index not in self._kept and self.kept_bytes < self.graph_budget_bytes:
            kept = self._linearize(self.batches[index])
            fits = self.kept_bytes + kept.saved_bytes <= self.graph_budget_bytes
            self._kept[index] = kept if fits else None
            self.kept_bytes += kept.saved_bytes if fits else 0
            return kept.product(v)  # built either way: use it once
        stored = self._kept.get(index)
        return stored.product(v) if stored is not None else self._product(v, self.batches[index])

    def _linearize(self, batch: TokenBatch) -> Linearization:
        module = self.objective.module
        if self.kind == "hessian":
            return linearize_hessian(module, self.theta, lambda theta: self.objective.per_sample_loss(theta, batch).sum())
        return linearize_gauss_newton(
            module, self.theta, lambda theta: self.objective.logits(theta, batch),
            lambda out: _output_hessian(out, batch.logit_targets),
        )

    def _gauss_newton(self, v: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Sum over the batch of J_i' H_i J_i v, with H_i the Hessian of sample i's mean NLL in its logits."""

        def logits(theta: torch.Tensor) -> torch.Tensor:
            return self.objective.logits(theta, batch)

        out, jv = jvp(logits, (self.theta,), (v,))  # type: ignore[misc]  # (B, K, V) each; torch.func types it as with has_aux
        _, pullback = vjp(logits, self.theta)  # type: ignore[misc]  # torch.func types its result as if has_aux were set
        return pullback(_output_hessian(out, batch.logit_targets)(jv).detach())[0]

    def _hessian(self, v: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """Sum over the batch of H_i v by double backward."""

        def total(theta: torch.Tensor) -> torch.Tensor:
            return self.objective.per_sample_loss(theta, batch).sum()

        _, pullback = vjp(grad(total), self.theta)  # type: ignore[misc]  # torch.func types its result as if has_aux were set
        return pullback(v)[0]
