"""Pure metric functions of the benchmark, on tensors and numbers (no models): tested on hand-made inputs.

    >>> gap_closed(erased=2.0, original=1.0, retrained=3.0)
    0.5
    >>> gap_closed(erased=4.0, original=1.0, retrained=3.0)  # overshooting counts against the method
    0.5
"""

from __future__ import annotations

import math

import torch

__all__ = ["gap_closed", "kl_from_reference", "membership_auc"]


def gap_closed(*, erased: float, original: float, retrained: float) -> float:
    """Share of the original-to-retrained gap a method closes, two-sided: 1 - |m_e - m_r| / |m_o - m_r|.

    1 is retraining's value exactly; 0 is no better than doing nothing; overshooting past the retrained
    value by the whole gap also gives 0, and further gives negative values (reported raw, never clipped).
    NaN when the original already equals the retrained value (there is no gap to close).
    """
    gap = abs(original - retrained)
    if gap == 0 or not math.isfinite(gap):
        return float("nan")
    return 1.0 - abs(erased - retrained) / gap


def membership_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """AUC of the loss attack: P(a member's loss < a non-member's loss), ties counted half.

    0.5 means the attacker cannot tell the forgotten samples from never-trained ones (what retraining gives
    in expectation); 1 means every forgotten sample still has a lower loss than every never-trained one.
    """
    members = member_losses.double().reshape(-1, 1)  # (M, 1)
    others = nonmember_losses.double().reshape(1, -1)  # (1, N)
    wins = (members < others).double() + 0.5 * (members == others).double()  # (M, N)
    return float(wins.mean())


def kl_from_reference(reference_logprobs: torch.Tensor, logprobs: torch.Tensor) -> float:
    """Mean over positions of KL(p_ref || p): both (N, V) log-probabilities at the same scored positions."""
    p_ref = reference_logprobs.double().exp()  # (N, V)
    return float((p_ref * (reference_logprobs.double() - logprobs.double())).sum(-1).mean())
