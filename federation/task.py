"""The federation's task, shared by ServerApp and ClientApp: the shared adapter's initialisation, one client's
local training round and its evaluation, on core's model loading and client/training.py's training loop.

FFA-LoRA (arXiv:2403.12313): the ServerApp draws A once from `seed` (peft's Kaiming-uniform init) with B = 0;
every "ffa" client then trains with lora_A frozen, so A stays bit-identical across clients and rounds and the
average of B is exact in effective weights (core.aggregation). "stack" and "fedavg" clients train A and B.

    >>> base = load_base("tiny")  # doctest: +SKIP
    >>> schema, tensors = initial_adapter(base, training)  # doctest: +SKIP
    >>> new, loss = train_round(base, schema, tensors, samples, training=training, method="ffa", seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel

from loravault.client.training import TrainingConfig, train_model
from loravault.core import IGNORE_INDEX, BaseModel, Sample
from loravault.core.adapter_schema import AdapterSchema
from loravault.core.peft_format import adapter_from_peft_model, new_peft_model, peft_model_with_adapter
from loravault.eraser import lora_objective, token_losses

from .config import LocalTraining

__all__ = ["Evaluation", "evaluate", "initial_adapter", "train_round"]


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean over samples of each sample's mean answer-token NLL
    recall: float  # fraction of samples whose answer tokens are all the model's argmax (teacher-forced)
    samples: int


def initial_adapter(base: BaseModel, training: LocalTraining) -> tuple[AdapterSchema, dict[str, torch.Tensor]]:
    """The shared adapter's version 1: A from `training.seed`, B = 0 (so the first round starts at the base)."""
    lora = LoraConfig(r=training.rank, lora_alpha=training.alpha,  # type: ignore[arg-type]  # peft annotates int
                      target_modules=list(training.modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        model = new_peft_model(base.model, lora)
    schema, tensors = adapter_from_peft_model(model, base_fingerprint=base.fingerprint)
    model.unload()  # give the base its plain modules back
    return schema, {k: v.to(torch.float32) for k, v in tensors.items()}


def _model(base: BaseModel, schema: AdapterSchema, tensors: dict[str, torch.Tensor], *, freeze_a: bool) -> PeftModel:
    model = peft_model_with_adapter(base.model, schema, {k: v.to(schema.torch_dtype) for k, v in tensors.items()})
    for name, parameter in model.named_parameters():
        parameter.requires_grad = (".lora_B." in name) or (".lora_A." in name and not freeze_a)
    return model


def train_round(
    base: BaseModel,
    schema: AdapterSchema,
    tensors: dict[str, torch.Tensor],
    samples: Sequence[Sample],
    *,
    training: LocalTraining,
    method: str,
    seed: int,
) -> tuple[dict[str, torch.Tensor], float]:
    """One client's local round from the shared adapter: its new adapter (float32) and its mean training loss
    after the round. `base` is modified in place while training and handed back unwrapped."""
    torch.set_num_threads(training.torch_threads)
    model = _model(base, schema, tensors, freeze_a=method == "ffa")
    config = TrainingConfig(rank=schema.rank, alpha=schema.alpha, target_modules=schema.target_modules,
                            steps=training.local_steps, batch_size=training.batch_size,
                            learning_rate=training.learning_rate, seed=seed, max_length=training.max_length)
    try:
        train_model(model, base.tokenizer, samples, config=config, progress=False)
        _, trained = adapter_from_peft_model(model, base_fingerprint=schema.base_fingerprint)
        loss = _measure(model, base, samples, training=training).loss
    finally:
        model.unload()
    return {k: v.to(torch.float32) for k, v in trained.items()}, loss


def evaluate(
    base: BaseModel, schema: AdapterSchema, tensors: dict[str, torch.Tensor], samples: Sequence[Sample], *,
    training: LocalTraining,
) -> Evaluation:
    """Loss and recall of the adapter on `samples` (the client's facts, or their held-out paraphrases)."""
    torch.set_num_threads(training.torch_threads)
    model = _model(base, schema, tensors, freeze_a=True)
    try:
        return _measure(model, base, samples, training=training)
    finally:
        model.unload()


@torch.no_grad()
def _measure(model: PeftModel, base: BaseModel, samples: Sequence[Sample], *, training: LocalTraining) -> Evaluation:
    objective = lora_objective(model, base.tokenizer, max_length=training.max_length)
    losses, hits = [], 0
    for start in range(0, len(samples), training.batch_size):
        batch = objective.render(samples[start : start + training.batch_size])
        logits = model(**batch.inputs).logits  # (B, T, V)
        losses += token_losses(logits, batch.targets).tolist()
        scored = batch.targets != IGNORE_INDEX  # (B, T)
        correct = (logits.argmax(-1) == batch.targets) | ~scored  # (B, T)
        hits += int(correct.all(-1).sum())
    return Evaluation(loss=sum(losses) / len(losses), recall=hits / len(samples), samples=len(samples))
