"""The unlearning literature's simple baselines: gradient ascent on the request, and the first-order update.

Gradient ascent (Jang et al., arXiv:2210.01504) raises the loss of the samples that leave and, for edits,
lowers the loss of their new versions; its only knob is the number of steps, chosen without the oracle as the
largest count that keeps a held-out sample of retained data within a loss bound. The first-order update
(Warnecke et al., arXiv:2108.11577) moves along b itself, the request's gradient sum, with the identity in
place of the inverse curvature; its length is set by the same calibration as the eraser's default step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from loravault.core import Sample
from loravault.eraser import (
    CalibrationConfig,
    CalibrationReport,
    ErasureRequest,
    calibrate_step,
    lora_objective,
    request_gradients,
    token_losses,
)

__all__ = ["first_order_update", "gradient_ascent"]


def gradient_ascent(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    request: ErasureRequest,
    *,
    checkpoints: Sequence[int],
    learning_rate: float,
    max_length: int,
    on_checkpoint: Callable[[int, float], None],
) -> None:
    """AdamW steps on mean loss(new versions) - mean loss(old versions), full batch, in place on the model.

    Calls on_checkpoint(steps taken, seconds so far) after each count in `checkpoints` (ascending); the
    callback may measure the model but must leave its weights as they are.
    """
    objective = lora_objective(model, tokenizer, max_length=max_length)
    old = objective.render(request.old_samples)
    new = objective.render(request.new_samples) if request.new_samples else None
    trainable = [p for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    seconds, taken = 0.0, 0
    for target in checkpoints:
        started = time.perf_counter()
        while taken < target:
            loss = -token_losses(model(**old.inputs).logits, old.targets).mean()
            if new is not None:
                loss = loss + token_losses(model(**new.inputs).logits, new.targets).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            taken += 1
        seconds += time.perf_counter() - started
        model.eval()
        on_checkpoint(taken, seconds)


def first_order_update(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    request: ErasureRequest,
    *,
    size_after: int,
    guard: Sequence[Sample],
    reference: Sequence[Sample],
    max_length: int,
    calibration: CalibrationConfig,
) -> tuple[dict[str, torch.Tensor], CalibrationReport]:
    """delta = s * b under the adapter's public names, s calibrated as the eraser's default step calibrates.

    Raises FailedPreconditionError (from calibrate_step) when no length satisfies the target and the guard.
    """
    objective = lora_objective(model, tokenizer, max_length=max_length)
    theta = objective.theta()
    gradients = request_gradients(objective, theta, request, progress=False)
    b = gradients.vector(size_after=size_after)  # (P,)
    forget, kept, ref = objective.render(request.old_samples), objective.render(list(guard)), objective.render(list(reference))

    def loss(batch: object, scale: float) -> float:
        with torch.no_grad():
            return float(objective.per_sample_loss(theta + scale * b, batch).mean())

    report = calibrate_step(lambda s: loss(forget, s), lambda s: loss(kept, s), target=loss(ref, 0.0), config=calibration,
                            slope=gradients.forget_slope(b))
    return {k: v.to(torch.float32) for k, v in objective.public(report.scale * b).items()}, report
