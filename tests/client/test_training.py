"""Local LoRA training: deterministic for a seed, lowers the eraser's loss, validates its config."""

from __future__ import annotations

import pytest
import torch

from loravault.client.training import TrainingConfig, train_lora
from loravault.core import InvalidArgumentError, Sample, adapter_from_peft_model, load_base
from loravault.eraser import lora_objective

SAMPLES = [Sample(f"s{i}", f"Who is s{i}?", f"s{i} likes {['tea', 'jazz', 'rain'][i % 3]}") for i in range(12)]
CONFIG = TrainingConfig(rank=2, alpha=4.0, steps=20, batch_size=4, learning_rate=1e-2)


def trained(config: TrainingConfig = CONFIG) -> dict[str, torch.Tensor]:
    base = load_base("tiny")
    model = train_lora(base.model, base.tokenizer, SAMPLES, config=config, progress=False)
    return adapter_from_peft_model(model, base_fingerprint=base.fingerprint)[1]


def test_training_is_deterministic_for_a_seed() -> None:
    first, second = trained(), trained()
    assert all(torch.equal(first[n], second[n]) for n in first)


def test_another_seed_gives_another_adapter() -> None:
    first, other = trained(), trained(TrainingConfig(rank=2, alpha=4.0, steps=20, batch_size=4, learning_rate=1e-2, seed=1))
    assert any(not torch.equal(first[n], other[n]) for n in first)


def test_linear_decay_runs_the_last_step_at_one_over_the_step_count_and_changes_the_adapter() -> None:
    from dataclasses import replace

    from loravault.client.training import rate_factor

    linear = replace(CONFIG, decay="linear")
    assert [rate_factor(linear, k, total=4) for k in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert {rate_factor(CONFIG, k, total=4) for k in range(4)} == {1.0}
    constant, decayed = trained(), trained(linear)
    assert any(not torch.equal(constant[n], decayed[n]) for n in constant)


def test_training_lowers_the_per_sample_answer_loss() -> None:
    base = load_base("tiny")
    model = train_lora(base.model, base.tokenizer, SAMPLES, config=TrainingConfig(rank=2, steps=1, learning_rate=1e-9), progress=False)
    objective = lora_objective(model, base.tokenizer)
    batch = objective.render(SAMPLES)
    before = float(objective.per_sample_loss(objective.theta(), batch).mean())
    base = load_base("tiny")
    model = train_lora(base.model, base.tokenizer, SAMPLES, config=CONFIG, progress=False)
    objective = lora_objective(model, base.tokenizer)
    after = float(objective.per_sample_loss(objective.theta(), batch).mean())
    assert after < before - 0.2  # 20 steps at lr 1e-2, random tiny base: measured 5.56 -> 5.22 nats


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({"rank": 0}, id="rank-0"), pytest.param({"steps": 0}, id="steps-0"),
     pytest.param({"learning_rate": -1.0}, id="negative-lr"), pytest.param({"target_modules": ()}, id="no-targets"),
     pytest.param({"decay": "cosine"}, id="unknown-decay")],
)
def test_bad_config_is_refused(kwargs) -> None:
    with pytest.raises(InvalidArgumentError):
        TrainingConfig(**kwargs)


def test_empty_training_set_is_refused() -> None:
    base = load_base("tiny")
    with pytest.raises(InvalidArgumentError):
        train_lora(base.model, base.tokenizer, [], config=CONFIG, progress=False)
