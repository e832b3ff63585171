"""Federated aggregation of LoRA adapters, measured in effective weights: FFA-LoRA, stacking, plain FedAvg.

Every method takes the clients' adapters (same schema) with their sample counts n_k and weights
w_k = n_k / sum(n). The reference is the exact weighted average of the clients' effective weights,

    W* = sum_k w_k * s * B_k @ A_k        (s = alpha / r, Hu et al., arXiv:2106.09685, eq. 3)

and each method reports how far its aggregate's effective weight s * B @ A lies from W* (Frobenius norm over
all modules together, in float64):

- "ffa" (FFA-LoRA, Sun et al., arXiv:2403.12313): A is drawn once from a seed and frozen, only B is trained,
  so every client holds the same A and sum_k w_k B_k @ A = (sum_k w_k B_k) @ A. Exact (error at rounding
  level); clients whose A differ are refused.
- "stack" (FLoRA, Wang et al., arXiv:2409.05976, eq. 4): B' = [w_1 B_1, ..., w_K B_K] and A' = [A_1; ...; A_K]
  give B' @ A' = sum_k w_k B_k @ A_k exactly at rank K r; the adapter keeps rank r, so the product is
  re-compressed by a truncated SVD (Eckart-Young: the best rank-r approximation). The error is the truncation
  error, s * sqrt(sum of the discarded squared singular values), reported per round.
- "fedavg" (A and B averaged separately, as FlowerTune does): approximate, because the average of products is
  not the product of averages; its error is reported so nobody mistakes it for exact.

Pure math: no I/O, no logging; inputs are never modified.

    >>> tensors, report = aggregate(schema, [ClientUpdate(t1, 10), ClientUpdate(t2, 30)], method="ffa")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass

import torch

from .adapter_schema import AdapterSchema, LoraPair
from .errors import InvalidArgumentError
from .norms import frobenius_norm

__all__ = [
    "AGGREGATION_METHODS",
    "EXACT_METHODS",
    "AggregationReport",
    "ClientUpdate",
    "aggregate",
    "exact_effective_average",
    "sample_weights",
]

AGGREGATION_METHODS = ("ffa", "stack", "fedavg")
EXACT_METHODS = frozenset({"ffa"})  # stack is exact up to its reported truncation error


@dataclass(frozen=True)
class ClientUpdate:
    """One client's adapter after local training, and how many samples it trained on (its weight)."""

    tensors: Mapping[str, torch.Tensor]
    num_samples: int

    def __post_init__(self) -> None:
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise InvalidArgumentError(f"a client update needs num_samples >= 1, got {self.num_samples!r}")


@dataclass(frozen=True)
class AggregationReport:
    """How an aggregate relates to the exact weighted average of the clients' effective weights."""

    method: str
    exact: bool  # True only for methods that are exact by construction (ffa)
    clients: int
    effective_weight_error: float  # ||s B A - W*||_F over all modules, float64
    relative_error: float  # effective_weight_error / ||W*||_F (0 when W* is 0)
    truncation_error: float  # stack: s * sqrt(sum of discarded sigma^2) over all modules; 0 otherwise


def sample_weights(counts: Sequence[int]) -> list[float]:
    """w_k = n_k / sum(n), in float64 (InvalidArgumentError for an empty list or a count below 1)."""
    if not counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in counts):
        raise InvalidArgumentError(f"sample counts must be one or more integers >= 1, got {list(counts)}")
    total = sum(counts)
    return [n / total for n in counts]


def _pair_tensors(update: ClientUpdate, pair: LoraPair) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of one module in float64: A (r, d_in), B (d_out, r)."""
    return update.tensors[pair.a_name].to(torch.float64), update.tensors[pair.b_name].to(torch.float64)


def exact_effective_average(schema: AdapterSchema, updates: Sequence[ClientUpdate]) -> dict[str, torch.Tensor]:
    """W* per module: sum_k w_k * s * B_k @ A_k, in float64 (the reference every method is measured against)."""
    weights = sample_weights([u.num_samples for u in updates])
    out = {}
    for pair in schema.pairs():
        total = torch.zeros((), dtype=torch.float64)  # broadcasts to (d_out, d_in)
        for weight, update in zip(weights, updates, strict=True):
            a, b = _pair_tensors(update, pair)
            total = total + weight * (b @ a)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)
        out[pair.module] = schema.scaling_of(pair) * total
    return out


def _ffa(schema: AdapterSchema, updates: Sequence[ClientUpdate], weights: list[float]) -> dict[str, torch.Tensor]:
    """B averaged by weight, the shared A kept; refuses clients whose A is not bit-identical to the first's."""
    out: dict[str, torch.Tensor] = {}
    for pair in schema.pairs():
        shared = updates[0].tensors[pair.a_name]
        for index, update in enumerate(updates[1:], start=1):
            if not torch.equal(update.tensors[pair.a_name], shared):
                raise InvalidArgumentError(
                    f"ffa: client {index} changed {pair.a_name}; FFA-LoRA needs A frozen at its shared seed")
        b = sum((w * u.tensors[pair.b_name].to(torch.float64) for w, u in zip(weights, updates, strict=True)),
                torch.zeros((), dtype=torch.float64))
        out[pair.a_name] = shared.to(torch.float32).clone()
        out[pair.b_name] = b.to(torch.float32)
    return out


def _fedavg(schema: AdapterSchema, updates: Sequence[ClientUpdate], weights: list[float]) -> dict[str, torch.Tensor]:
    """A and B each averaged by weight (approximate in effective weights)."""
    out: dict[str, torch.Tensor] = {}
    for pair in schema.pairs():
        for name in (pair.a_name, pair.b_name):
            mean = sum((w * u.tensors[name].to(torch.float64) for w, u in zip(weights, updates, strict=True)),
                       torch.zeros((), dtype=torch.float64))
            out[name] = mean.to(torch.float32)
    return out


def _stack(
    schema: AdapterSchema, updates: Sequence[ClientUpdate], weights: list[float]
) -> tuple[dict[str, torch.Tensor], float]:
    """Stack, then re-compress each module to rank r; returns the tensors and the truncation error."""
    out: dict[str, torch.Tensor] = {}
    discarded = 0.0  # squared Frobenius norm of what truncation drops, in effective weights
    for pair in schema.pairs():
        r = schema.rank_of(pair)
        pairs = [_pair_tensors(u, pair) for u in updates]
        b_stack = torch.cat([w * b for w, (_, b) in zip(weights, pairs, strict=True)], dim=1)  # (d_out, K r)
        a_stack = torch.cat([a for a, _ in pairs], dim=0)  # (K r, d_in)
        # SVD of B' A' through two thin QRs, never forming the (d_out, d_in) product's SVD directly
        q_b, r_b = torch.linalg.qr(b_stack)  # (d_out, m), (m, K r)
        q_a, r_a = torch.linalg.qr(a_stack.T)  # (d_in, m'), (m', K r)
        u, sigma, vh = torch.linalg.svd(r_b @ r_a.T)  # core (m, m')
        keep = min(r, sigma.numel())
        discarded += (schema.scaling_of(pair) * frobenius_norm([sigma[keep:]])) ** 2
        root = sigma[:keep].sqrt()
        b_new = torch.zeros(b_stack.shape[0], r, dtype=torch.float64)
        a_new = torch.zeros(r, a_stack.shape[1], dtype=torch.float64)
        b_new[:, :keep] = (q_b @ u[:, :keep]) * root  # (d_out, r)
        a_new[:keep] = root[:, None] * (vh[:keep] @ q_a.T)  # (r, d_in)
        out[pair.a_name], out[pair.b_name] = a_new.to(torch.float32), b_new.to(torch.float32)
    return out, math.sqrt(discarded)


def _check_updates(schema: AdapterSchema, updates: Sequence[ClientUpdate], method: str) -> None:
    if method not in AGGREGATION_METHODS:
        raise InvalidArgumentError(f"aggregation method {method!r} is not one of {', '.join(AGGREGATION_METHODS)}")
    if not updates:
        raise InvalidArgumentError("aggregation needs at least one client update")
    f32 = dataclasses.replace(schema, dtype="float32")
    for index, update in enumerate(updates):
        f32.check_tensors({k: v.to(torch.float32) for k, v in update.tensors.items()}, what=f"client update {index}")


def aggregate(
    schema: AdapterSchema, updates: Sequence[ClientUpdate], *, method: str = "ffa"
) -> tuple[dict[str, torch.Tensor], AggregationReport]:
    """The aggregate adapter (float32 tensors under the schema's names) and its report.

    Raises InvalidArgumentError: unknown method, no updates, an update whose names or shapes differ from the
    schema or that holds NaN or infinity, or (ffa) clients whose A differ.
    """
    _check_updates(schema, updates, method)
    weights = sample_weights([u.num_samples for u in updates])
    truncation = 0.0
    if method == "ffa":
        tensors = _ffa(schema, updates, weights)
    elif method == "fedavg":
        tensors = _fedavg(schema, updates, weights)
    else:
        tensors, truncation = _stack(schema, updates, weights)
    exact = exact_effective_average(schema, updates)
    error = frobenius_norm(  # in float64, one module's difference at a time
        schema.scaling_of(pair) * (tensors[pair.b_name].to(torch.float64) @ tensors[pair.a_name].to(torch.float64))
        - exact[pair.module]
        for pair in schema.pairs()
    )
    reference = frobenius_norm(exact)
    report = AggregationReport(method=method, exact=method in EXACT_METHODS, clients=len(updates),
                               effective_weight_error=error,
                               relative_error=error / reference if reference > 0 else 0.0,
                               truncation_error=truncation)
    return tensors, report
