"""Choosing the next token: greedy, or temperature with top-k and top-p, from a per-sequence seeded generator.

Every sequence owns its generator, seeded from its request, and draws from it only for its own row, so the
tokens a seed gives do not depend on what else shares the batch.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import torch

from loravault.core.errors import InvalidArgumentError

__all__ = ["SamplingParams", "sample", "greedy", "MAX_STOP_STRINGS", "MAX_STOP_CHARS"]

MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 64
_MAX_TEMPERATURE = 100.0
_MAX_SEED = (1 << 63) - 1


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples; validated here so a bad request is refused before it queues."""

    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus: keep the smallest set of tokens whose probability reaches top_p (1 = off)
    top_k: int = 0  # keep the k most likely tokens (0 = off)
    seed: int = 0  # 0 = a fresh random seed; any other value makes sampling reproducible
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # generation ends before the first occurrence of any of these
    ignore_eos: bool = False  # run to max_new_tokens past end-of-sequence (benchmarks: equal work per system)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= _MAX_TEMPERATURE):
            raise InvalidArgumentError(f"temperature {self.temperature} must be in [0, {_MAX_TEMPERATURE}]")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise InvalidArgumentError(f"top_p {self.top_p} must be in (0, 1]")
        if self.top_k < 0:
            raise InvalidArgumentError(f"top_k {self.top_k} must not be negative")
        if not 0 <= self.seed <= _MAX_SEED:
            raise InvalidArgumentError(f"seed {self.seed} must be in [0, 2**63 - 1]")
        if self.max_new_tokens < 1:
            raise InvalidArgumentError(f"max_new_tokens {self.max_new_tokens} must be at least 1")
        if len(self.stop) > MAX_STOP_STRINGS or any(not 0 < len(s) <= MAX_STOP_CHARS for s in self.stop):
            raise InvalidArgumentError(
                f"stop: at most {MAX_STOP_STRINGS} strings of 1 to {MAX_STOP_CHARS} characters each")

    def generator(self) -> torch.Generator | None:
        """The sequence's own CPU generator (None for greedy, which draws nothing)."""
        if self.temperature == 0:
            return None
        return torch.Generator(device="cpu").manual_seed(self.seed or secrets.randbits(63))


def greedy(logits: torch.Tensor) -> list[int]:
    """Argmax of each row of (M, V) logits."""
    return logits.argmax(dim=-1).tolist()


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from a (V,) row of logits under temperature, top-k and top-p."""
    scaled = logits.detach().to(device="cpu", dtype=torch.float32) / params.temperature  # (V,)
    if params.top_k and params.top_k < scaled.shape[0]:
        kth = torch.topk(scaled, params.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if params.top_p < 1:
        order = torch.argsort(scaled, descending=True)  # (V,)
        probs = torch.softmax(scaled[order], dim=-1)
        # drop a token when the tokens before it already reach top_p; the first one always stays
        drop = (torch.cumsum(probs, dim=-1) - probs) >= params.top_p
        scaled[order[drop]] = -math.inf
    probs = torch.softmax(scaled, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
