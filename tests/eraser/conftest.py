"""Shared fixtures: a tiny LoRA adapter with its dense Gauss-Newton matrix, LoRA adapters on GPT-2, Qwen2 and
GPT-NeoX built from their configs, and a logistic-regression head.

The dense matrix costs P curvature products, so it is built once per session on a deliberately small adapter
(tiny base, LoRA r=2 on q_proj: 512 parameters) and a 6-sample curvature set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from loravault.client.training import TrainingConfig, train_lora
from loravault.core import Sample, load_base
from loravault.bench.eraser_cg import BenchConfig, trained
from loravault.core.tokenizer import byte_tokenizer
from eraser_problems import people

from loravault.eraser import CurvatureOperator, Objective, dense_matrix, lora_objective

# NOTE: two shared CPU cores: one thread avoids oversubscription, which made tiny forwards 5x slower.
torch.set_num_threads(1)

@dataclass
class TinySetup:
    model: nn.Module
    tokenizer: object
    train: list[Sample]
    objective: Objective
    theta: torch.Tensor
    curvature: list[Sample]
    operator: CurvatureOperator
    dense: torch.Tensor  # (P, P) float64 Gauss-Newton over `curvature`


@pytest.fixture(scope="session")
def tiny() -> TinySetup:
    base = load_base("tiny", attn_implementation="eager")
    train = people(24)
    config = TrainingConfig(rank=2, alpha=4.0, target_modules=("q_proj",), steps=60, batch_size=8, learning_rate=1e-2)
    model = train_lora(base.model, base.tokenizer, train, config=config, progress=False)
    objective = lora_objective(model, base.tokenizer)
    theta = objective.theta()
    curvature = train[:6]
    operator = CurvatureOperator(objective, theta, curvature)
    dense = dense_matrix(operator, theta.numel(), chunk=128, progress=False)
    return TinySetup(model, base.tokenizer, train, objective, theta, curvature, operator, dense)


@dataclass
class ConfigSetup:
    """A LoRA adapter trained on a model built from a transformers config (eraser_problems.ARCHITECTURES)."""

    architecture: str
    train: list[Sample]
    objective: Objective


@pytest.fixture(scope="session")
def architectures() -> Callable[[str], ConfigSetup]:
    """Each architecture's adapter (rank 1 on the attention input projection: 256-512 LoRA parameters), trained
    once per session on first use (2-4 s each on one core), exactly as the eraser-cg benchmark trains it."""
    built: dict[str, ConfigSetup] = {}

    def get(architecture: str) -> ConfigSetup:
        if architecture not in built:
            train = people(BenchConfig().samples)
            model = trained(architecture, train, BenchConfig())
            built[architecture] = ConfigSetup(architecture, train, lora_objective(model, byte_tokenizer()))
        return built[architecture]

    return get
