"""Local LoRA training on a list of samples: seeded, fixed data order, AdamW, the eraser's exact loss.

The loss is the one the eraser differentiates: each sample's mean token NLL over its answer tokens, averaged
over the batch (not a token mean over the batch, which would weight long answers more), rendered with core's
one template. The model stays in eval mode (LoRA dropout is 0), so training and erasure see the same function.

    >>> base = load_base("tiny")  # doctest: +SKIP
    >>> model = train_lora(base.model, base.tokenizer, samples, config=TrainingConfig(steps=50))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loravault.core import InvalidArgumentError, Sample
from loravault.core.peft_format import new_peft_model
from loravault.eraser import lora_objective, token_losses

__all__ = ["TrainingConfig", "rate_factor", "train_lora", "train_model"]


@dataclass(frozen=True)
class TrainingConfig:
    """LoRA shape and optimisation schedule."""

    # adapter
    rank: int = 8  # r
    alpha: float = 16.0  # lora_alpha
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    # schedule
    epochs: int = 1  # passes over the data when steps is None
    steps: int | None = None  # optimizer steps; overrides epochs (the data is cycled)
    batch_size: int = 8
    learning_rate: float = 1e-3
    decay: str = "constant"  # "linear": the rate falls linearly to 0 at the last step, so the adapter settles
    weight_decay: float = 0.0  # AdamW's decoupled decay
    # reproducibility and placement
    seed: int = 0  # LoRA initialisation and data order
    max_length: int = 128
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("rank", "epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InvalidArgumentError(f"training {name} must be a positive integer, got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps <= 0):
            raise InvalidArgumentError(f"training steps must be a positive integer or None, got {self.steps!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0 and self.alpha > 0):
            raise InvalidArgumentError("training learning_rate and alpha must be positive")
        if self.decay not in ("constant", "linear"):
            raise InvalidArgumentError(f"training decay must be constant or linear, got {self.decay!r}")
        if self.weight_decay < 0 or not self.target_modules:
            raise InvalidArgumentError("training weight_decay must be >= 0 and target_modules non-empty")


def train_lora(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    *,
    config: TrainingConfig = TrainingConfig(),
    progress: bool = True,
) -> PeftModel:
    """Wrap `base_model` (modified in place by peft) with a new LoRA adapter and train it; returns the PeftModel.

    Deterministic on CPU for a given seed. Raises InvalidArgumentError for an empty sample list.
    """
    if not samples:
        raise InvalidArgumentError("training needs at least one sample")
    lora = LoraConfig(
        r=config.rank, lora_alpha=config.alpha,  # type: ignore[arg-type]  # peft annotates int, takes any float
        target_modules=list(config.target_modules), lora_dropout=0.0,
        bias="none", task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        # transformers types PreTrainedModel.to through functools.wraps, which mypy reads without `self`
        model = new_peft_model(base_model.to(config.device), lora)  # type: ignore[arg-type]
    return train_model(model, tokenizer, samples, config=config, progress=progress)


def train_model(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    *,
    config: TrainingConfig = TrainingConfig(),
    progress: bool = True,
) -> PeftModel:
    """Train the parameters of an existing PeftModel that require grad (a federated client freezes lora_A
    for FFA-LoRA), with train_lora's loss, schedule and optimizer; returns the model in eval mode.

    Only config's schedule, optimisation and placement fields apply (the LoRA shape is the model's).
    Raises InvalidArgumentError for an empty sample list or a model with nothing to train.
    """
    if not samples:
        raise InvalidArgumentError("training needs at least one sample")
    objective = lora_objective(model, tokenizer, max_length=config.max_length, device=config.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise InvalidArgumentError("the model has no parameter that requires grad: nothing to train")
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    batches = _schedule(samples, config)
    rate = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rate_factor(config, step, total=len(batches)))
    for batch_samples in tqdm(batches, desc="training", disable=None if progress else True, leave=False):
        batch = objective.render(batch_samples).to(config.device)
        loss = token_losses(model(**batch.inputs).logits, batch.targets).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rate.step()
    return model.eval()


def rate_factor(config: TrainingConfig, step: int, *, total: int) -> float:
    """The multiple of learning_rate that step `step` (0-based) of `total` runs at."""
    return 1.0 - step / total if config.decay == "linear" else 1.0


def _schedule(samples: Sequence[Sample], config: TrainingConfig) -> list[list[Sample]]:
    """The batches in order: a seeded permutation per epoch, cut into batches; cycled up to `steps`."""
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = math.ceil(len(samples) / config.batch_size)
    total = config.steps if config.steps is not None else config.epochs * per_epoch
    batches: list[list[Sample]] = []
    while len(batches) < total:
        order = torch.randperm(len(samples), generator=generator).tolist()
        batches += [[samples[i] for i in order[s : s + config.batch_size]] for s in range(0, len(order), config.batch_size)]
    return batches[:total]
