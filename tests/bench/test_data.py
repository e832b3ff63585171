"""The benchmark's data generators: seeded, disjoint where the design needs disjoint sets."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from loravault.bench.unlearning.config import FactsConfig, LabelsConfig, preset
from loravault.bench.unlearning.facts import make_world
from loravault.bench.unlearning.labels import make_label_task
from loravault.bench.unlearning.tasks import facts_family, labels_family
from loravault.core import InvalidArgumentError

TEXT = torch.zeros((1, 4), dtype=torch.long)


def test_world_is_seeded_and_paraphrases_differ_from_trained_questions() -> None:
    first, again, other = (make_world(entities=5, attributes=3, seed=s) for s in (0, 0, 1))
    assert first == again and first != other
    for entity in first.entities:
        for fact, paraphrase in zip(first.facts(entity), first.paraphrases(entity)):
            assert fact.response == paraphrase.response and fact.prompt != paraphrase.prompt


def test_facts_family_keeps_reference_nonmembers_and_training_entities_apart() -> None:
    family = facts_family(FactsConfig(entities=20, attributes=2, fractions=(0.01, 0.1), edit_fraction=0.1), text=TEXT, guard_size=4)
    names = lambda samples: {s.id.split("-")[0] for s in samples}  # noqa: E731
    nonmembers = names(family.tasks[0].sets.sets["nonmember"])
    assert not names(family.train) & names(family.reference)
    assert not names(family.train) & nonmembers and not names(family.reference) & nonmembers
    removal_1, removal_10 = family.tasks[0], family.tasks[1]
    assert len(names(removal_1.request.old_samples)) == 1  # 1% of 20 entities rounds to at least one entity
    assert len(names(removal_10.request.old_samples)) == 2
    assert {s.id for s in removal_1.new_train} == {s.id for s in family.train} - removal_1.request.touched_ids
    kinds = [next(iter(t.request.kinds())) for t in family.tasks[2:]]
    assert kinds == ["query_modification", "response_correction"]
    assert all(len(t.new_train) == len(family.train) for t in family.tasks[2:])
    assert not {s.id for s in removal_1.guard} & removal_1.request.touched_ids


def test_label_task_corrects_exactly_the_corrupted_labels() -> None:
    task = make_label_task(train=20, held_out=10, corrupted=4, seed=3)
    differing = {t.id for t, c in zip(task.train, task.clean) if t.response != c.response}
    assert differing == set(task.corrupted_ids) and len(differing) == 4
    family = labels_family(LabelsConfig(train=20, held_out=10, corrupted=4, seed=3), text=TEXT, guard_size=4)
    (correction,) = family.tasks
    assert list(correction.new_train) == list(task.clean)
    assert correction.request.kinds() == {"response_correction": 4}


def test_presets_build_and_every_trained_family_shares_the_erasers_token_budget() -> None:
    for base in ("tiny", "smollm2-135m"):
        config = preset(base)
        assert config.training.max_length == config.labels.training.max_length == config.eraser.max_length
    config = preset("tiny")
    shorter = replace(config.labels, training=replace(config.labels.training, max_length=64))
    with pytest.raises(InvalidArgumentError, match="max_length must match"):
        replace(config, labels=shorter)


def test_the_extra_run_adds_the_tasks_the_headline_run_leaves_out_on_the_same_adapter() -> None:
    headline, extra = preset("smollm2-135m"), preset("smollm2-135m", extra=True)
    assert (extra.training, extra.eraser, extra.methods) == (headline.training, headline.eraser, headline.methods)
    assert (extra.facts.entities, extra.facts.attributes, extra.facts.seed) == (48, 4, headline.facts.seed)
    assert extra.facts.fractions == (0.05,) and extra.facts.edit_fraction > 0 and extra.labels.train == 0
    assert not set(extra.facts.fractions) & set(headline.facts.fractions)
    with pytest.raises(InvalidArgumentError, match="already has every task"):
        preset("tiny", extra=True)
