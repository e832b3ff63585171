"""Federated aggregation against brute-force references: the dense weighted average of B_k @ A_k, a direct SVD."""

from __future__ import annotations

import math

import pytest
import torch

from loravault.core import AdapterSchema, InvalidArgumentError, TensorSpec
from loravault.core.aggregation import ClientUpdate, aggregate, exact_effective_average

FP = "ab" * 32
RANK = 4


def schema(d_out: int = 12, d_in: int = 10) -> AdapterSchema:
    return AdapterSchema(rank=RANK, alpha=8.0, target_modules=("q_proj", "v_proj"), dtype="float32",
                         base_fingerprint=FP, tensors=tuple(sorted((
                             TensorSpec("m.q_proj.lora_A.weight", (RANK, d_in)),
                             TensorSpec("m.q_proj.lora_B.weight", (d_out, RANK)),
                             TensorSpec("m.v_proj.lora_A.weight", (RANK, d_in)),
                             TensorSpec("m.v_proj.lora_B.weight", (d_out, RANK))), key=lambda t: t.name)))


def clients(s: AdapterSchema, counts: list[int], *, shared_a: bool, seed: int = 0) -> list[ClientUpdate]:
    g = torch.Generator().manual_seed(seed)
    shared = {t.name: torch.randn(t.shape, generator=g) for t in s.tensors if "lora_A" in t.name}
    updates = []
    for n in counts:
        tensors = {t.name: torch.randn(t.shape, generator=g) for t in s.tensors}
        if shared_a:
            tensors.update({k: v.clone() for k, v in shared.items()})
        updates.append(ClientUpdate(tensors, n))
    return updates


def dense_reference(s: AdapterSchema, updates: list[ClientUpdate]) -> dict[str, torch.Tensor]:
    """sum_k n_k / N * s * B_k A_k by a plain loop, per module, float64."""
    total = sum(u.num_samples for u in updates)
    out = {}
    for module in ("m.q_proj", "m.v_proj"):
        out[module] = sum(u.num_samples / total * (s.alpha / s.rank)
                          * (u.tensors[f"{module}.lora_B.weight"].double() @ u.tensors[f"{module}.lora_A.weight"].double())
                          for u in updates)
    return out


def effective(s: AdapterSchema, tensors: dict[str, torch.Tensor], module: str) -> torch.Tensor:
    return (s.alpha / s.rank) * (tensors[f"{module}.lora_B.weight"].double() @ tensors[f"{module}.lora_A.weight"].double())


def test_ffa_aggregate_equals_weighted_average_of_effective_weights():
    s = schema()
    updates = clients(s, [3, 5, 12], shared_a=True)
    tensors, report = aggregate(s, updates, method="ffa")
    reference = dense_reference(s, updates)
    for module, want in reference.items():
        # float32 storage of B: the aggregate's entries carry ~1e-7 relative rounding, far under 1e-6
        assert torch.allclose(effective(s, tensors, module), want, atol=1e-6 * float(want.abs().max()), rtol=0)
    assert report.exact and report.relative_error < 1e-6


def test_ffa_refuses_clients_that_changed_a():
    s = schema()
    updates = clients(s, [1, 1], shared_a=False)
    with pytest.raises(InvalidArgumentError, match="A frozen"):
        aggregate(s, updates, method="ffa")


def test_stack_reports_the_truncation_error_of_a_direct_svd():
    s = schema()
    updates = clients(s, [2, 3, 7], shared_a=False)
    tensors, report = aggregate(s, updates, method="stack")
    reference = dense_reference(s, updates)
    discarded = 0.0
    for module, want in reference.items():
        sigma = torch.linalg.svdvals(want)  # want already carries the scaling s
        discarded += float(sigma[RANK:].pow(2).sum())
        # Eckart-Young: the rank-r aggregate is the truncated SVD, so its error is exactly the discarded tail
        tail = math.sqrt(float(sigma[RANK:].pow(2).sum()))
        assert float((effective(s, tensors, module) - want).norm()) == pytest.approx(tail, rel=1e-4)
    assert report.truncation_error == pytest.approx(math.sqrt(discarded), rel=1e-9)
    assert report.effective_weight_error == pytest.approx(report.truncation_error, rel=1e-4)
    assert not report.exact and report.truncation_error > 0


def test_stack_of_one_client_is_lossless():
    s = schema()
    updates = clients(s, [4], shared_a=False)
    _, report = aggregate(s, updates, method="stack")
    assert report.truncation_error < 1e-9 * float(torch.stack(
        [v.norm() for v in dense_reference(s, updates).values()]).norm())


def test_fedavg_reports_its_error_against_the_exact_average():
    s = schema()
    updates = clients(s, [1, 2, 3], shared_a=False)
    tensors, report = aggregate(s, updates, method="fedavg")
    weights = [1 / 6, 2 / 6, 3 / 6]
    error_sq = 0.0
    for module, want in dense_reference(s, updates).items():
        a = sum(w * u.tensors[f"{module}.lora_A.weight"].double() for w, u in zip(weights, updates))
        b = sum(w * u.tensors[f"{module}.lora_B.weight"].double() for w, u in zip(weights, updates))
        error_sq += float(((s.alpha / s.rank) * (b @ a) - want).pow(2).sum())
    assert report.effective_weight_error == pytest.approx(math.sqrt(error_sq), rel=1e-5)
    assert not report.exact and report.relative_error > 0.01  # random clients: far from exact


def test_exact_average_matches_the_dense_loop():
    s = schema()
    updates = clients(s, [5, 1], shared_a=False)
    got, want = exact_effective_average(s, updates), dense_reference(s, updates)
    assert all(torch.allclose(got[m], want[m], atol=1e-12) for m in want)


@pytest.mark.parametrize("bad, match", [
    (lambda u: {**u, "m.q_proj.lora_B.weight": torch.full((12, RANK), float("nan"))}, "NaN"),
    (lambda u: {k: v for k, v in u.items() if "v_proj.lora_B" not in k}, "missing"),
    (lambda u: {**u, "m.q_proj.lora_B.weight": torch.zeros(11, RANK)}, "shape"),
], ids=["nan", "missing-tensor", "wrong-shape"])
def test_bad_updates_are_refused(bad, match):
    s = schema()
    good = clients(s, [1, 1], shared_a=True)
    broken = [good[0], ClientUpdate(bad(dict(good[1].tensors)), 1)]
    with pytest.raises(InvalidArgumentError, match=match):
        aggregate(s, broken, method="ffa")


@pytest.mark.parametrize("method, count", [("median", 1), ("ffa", 0)], ids=["unknown-method", "zero-samples"])
def test_bad_arguments_are_refused(method, count):
    s = schema()
    with pytest.raises(InvalidArgumentError):
        aggregate(s, [ClientUpdate(clients(s, [1], shared_a=True)[0].tensors, count)], method=method)
