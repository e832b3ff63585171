"""Test problems for the eraser: made-up people facts, small causal LMs of other architectures, and logistic
regression through the same Objective."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# the made-up facts and the models built from configs are the eraser-cg benchmark's, so its numbers are these tests'
from loravault.bench.eraser_cg import ARCHITECTURES, config_model, people  # noqa: F401 (re-exported)
from loravault.core import Sample
from loravault.eraser import Objective, TokenBatch


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """||x - reference|| / ||reference||, in float64."""
    return float((x.double() - reference.double()).norm() / reference.double().norm())


# logistic regression: a bias-free linear head on fixed features, through the same Objective


def features_sample(sample_id: str, x: Sequence[float], label: int) -> Sample:
    return Sample(sample_id, ",".join(f"{v:.17g}" for v in x), str(label))


def render_features(samples: Sequence[Sample]) -> TokenBatch:
    x = torch.tensor([[float(v) for v in s.prompt.split(",")] for s in samples])  # (B, D)
    y = torch.tensor([[int(s.response)] for s in samples])  # (B, 1)
    return TokenBatch(inputs={"input": x.unsqueeze(1)}, targets=y, mask=torch.ones_like(y))


class LogisticHead(nn.Module):
    """Logistic regression as a two-class softmax whose class-0 logit is fixed at 0 (no redundant row)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1, bias=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        z = self.linear(input)  # (B, 1, 1)
        return torch.cat([torch.zeros_like(z), z], dim=-1)  # (B, 1, 2)


def logistic_objective(weight: torch.Tensor) -> Objective:
    head = LogisticHead(weight.shape[1])
    with torch.no_grad():
        head.linear.weight.copy_(weight)
    return Objective(head, ("linear.weight",), ("linear.weight",), render_features, torch.device("cpu"), supports_vmap=True)


def logistic_data(n: int, *, seed: int = 0, dim: int = 5) -> list[Sample]:
    """Overlapping classes (noisy labels), so the maximum-likelihood fit is finite and strongly convex."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    x = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # constant feature: the bias
    w = torch.linspace(-1.0, 1.0, dim + 1, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)).long()
    return [features_sample(f"z{i:04d}", x[i].tolist(), int(y[i])) for i in range(n)]


def fit_logistic(samples: Sequence[Sample], *, start: torch.Tensor | None = None) -> torch.Tensor:
    """Exact maximum likelihood in float64 by Newton's method, independent of the eraser: weight (1, D).

    Newton stops when the gradient norm is below 1e-13 (float64), far below any difference the tests measure.
    """
    batch = render_features(samples)
    x, y = batch.inputs["input"][:, 0].double(), batch.targets[:, 0].double()  # (n, D), (n,)
    w = torch.zeros(x.shape[1], dtype=torch.float64) if start is None else start[0].double().clone()
    for _ in range(100):
        p = torch.sigmoid(x @ w)
        grad = x.T @ (p - y) / len(y)
        if float(grad.norm()) < 1e-13:
            break
        hessian = (x.T * (p * (1 - p))) @ x / len(y)
        w = w - torch.linalg.solve(hessian, grad)
    return w.unsqueeze(0)
