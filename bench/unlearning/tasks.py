"""The benchmark's requests: each task is one erasure request with its new training set and evaluation sets.

Facts tasks remove every fact of a share of the trained entities (at least one entity; the smallest share
`removal_repeats` times over, each request forgetting other entities), or edit the query / correct the answer
of a share of the facts. The labels task corrects the corrupted labels. The never-trained
reference samples (the calibrated step's target) and the membership-inference negatives come from disjoint
entities (or objects), so the attack is not the quantity the step was tuned to.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from loravault.core import InvalidArgumentError, Sample
from loravault.eraser import ErasureRequest

from .config import FactsConfig, LabelsConfig
from .evaluate import EvalSets
from .facts import World, make_world
from .labels import flip, make_label_task

__all__ = ["Family", "Task", "facts_family", "labels_family"]


@dataclass(frozen=True)
class Task:
    """One request against a family's original adapter, and what retraining would have trained on."""

    name: str  # e.g. "removal 1% (1 entity)"
    request: ErasureRequest
    new_train: list[Sample]  # the oracle's training set
    sets: EvalSets
    guard: list[Sample]  # held-out retained samples for the baselines' rules
    gap_metrics: tuple[str, ...]  # summary keys whose gap to retraining is reported; the first is the headline
    reference: list[Sample]  # never-trained samples: the calibrated steps' target loss
    noise_seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Family:
    """A training set, its never-trained reference samples, and the tasks asked of the adapter trained on it."""

    name: str
    train: list[Sample]
    reference: list[Sample]
    tasks: list[Task]


def _guard(retained: list[Sample], size: int, seed: int) -> list[Sample]:
    chosen = sorted(retained, key=lambda s: s.id)
    random.Random(seed).shuffle(chosen)
    return chosen[:size]


def facts_family(config: FactsConfig, *, text: torch.Tensor, guard_size: int) -> Family:
    """Trained, reference and non-member entities split from one world; one task per fraction and edit kind."""
    total = config.entities + config.reference_entities + config.nonmember_entities
    world = make_world(entities=total, attributes=config.attributes, seed=config.seed)
    trained = list(world.entities[: config.entities])
    reference = world.all_facts(world.entities[config.entities : config.entities + config.reference_entities])
    nonmembers = world.all_facts(world.entities[config.entities + config.reference_entities :])
    train = world.all_facts(trained)
    order = list(trained)
    random.Random(config.seed + 1).shuffle(order)
    tasks = []
    for index, fraction in enumerate(config.fractions):
        count = max(1, round(fraction * len(trained)))
        repeats = config.removal_repeats if index == 0 else 1
        if repeats * count > len(trained):
            raise InvalidArgumentError(f"facts: {repeats} requests of {count} entities need more than {len(trained)} entities")
        for repeat in range(repeats):
            name = f"removal {fraction:.0%} ({count} of {len(trained)} entities)" + (f" #{repeat + 1}" if repeats > 1 else "")
            tasks.append(_removal(world, order[repeat * count : (repeat + 1) * count], trained, nonmembers, reference, config,
                                  text, guard_size, name=name, noise=config.noise_seeds if index == repeat == 0 else ()))
    if config.edit_fraction > 0:
        count = max(1, round(config.edit_fraction * len(train)))
        picked = sorted(random.Random(config.seed + 2).sample(train, count), key=lambda s: s.id)
        edits = [(s, f"Tell me this about {_name(world, s)}: {s.id.split('-')[1]}?") for s in picked]
        tasks.append(_edit(world, ErasureRequest.of(query_edits=edits), train, trained, nonmembers, reference, config, text, guard_size,
                           name=f"query modification {config.edit_fraction:.0%} ({count} facts)"))
        corrections = [(s, _other_value(world, s)) for s in picked]
        tasks.append(_edit(world, ErasureRequest.of(response_corrections=corrections), train, trained, nonmembers, reference, config, text,
                           guard_size, name=f"response correction {config.edit_fraction:.0%} ({count} facts)"))
    return Family("facts", train, reference, tasks)


def _name(world: World, sample: Sample) -> str:
    entity = next(e for e in world.entities if sample.id.startswith(e.key + "-"))
    return entity.name


def _other_value(world: World, sample: Sample) -> str:
    """A different value of the same attribute: what the corrected answer says."""
    key = sample.id.split("-")[1]
    attribute = next(a for a in world.attributes if a.key == key)
    pool = [v for v in attribute.values if v != sample.response] or [sample.response[::-1].capitalize()]
    return random.Random(sample.id).choice(pool)


def _paraphrase_subsample(world: World, entities: list, size: int, seed: int) -> list[Sample]:
    paraphrases = world.all_paraphrases(entities)
    random.Random(seed).shuffle(paraphrases)
    return sorted(paraphrases[:size], key=lambda s: s.id)


def _removal(world, forgotten, trained, nonmembers, reference, config, text, guard_size, *, name, noise) -> Task:
    forget = world.all_facts(forgotten)
    kept = [e for e in trained if e not in forgotten]
    retain = world.all_facts(kept)
    guard = _guard(retain, guard_size, config.seed)
    sets = EvalSets(
        sets={"forget": forget, "retain": retain, "guard": guard, "para_forget": world.all_paraphrases(forgotten),
              "para_retain": _paraphrase_subsample(world, kept, config.paraphrase_retain, config.seed), "nonmember": nonmembers},
        kl_sets=("forget", "retain"), members="forget", nonmembers="nonmember", text=text,
    )
    return Task(name, ErasureRequest.of(removals=forget), retain, sets, guard,
                ("forget_loss", "forget_recall", "kl_forget", "mia_auc"), reference, noise)


def _edit(world, request, train, trained, nonmembers, reference, config, text, guard_size, *, name) -> Task:
    touched = request.touched_ids
    retain = [s for s in train if s.id not in touched]
    new_train = [next((c.new for c in request.changes if c.id == s.id), s) for s in train]
    guard = _guard(retain, guard_size, config.seed)
    sets = EvalSets(
        sets={"forget": request.old_samples, "target": request.new_samples, "retain": retain, "guard": guard,
              "para_retain": _paraphrase_subsample(world, trained, config.paraphrase_retain, config.seed), "nonmember": nonmembers},
        kl_sets=("forget", "target", "retain"), members="forget", nonmembers="nonmember", text=text,
    )
    return Task(name, request, new_train, sets, guard, ("forget_loss", "target_loss", "kl_target", "kl_forget"), reference)


def labels_family(config: LabelsConfig, *, text: torch.Tensor, guard_size: int) -> Family:
    """The corrupted-label adapter, and one task: correct every corrupted label."""
    task = make_label_task(train=config.train, held_out=config.held_out, corrupted=config.corrupted, seed=config.seed,
                           reference=16)
    reference, nonmembers = list(task.reference[:8]), list(task.reference[8:])
    old = [s for s in task.train if s.id in task.corrupted_ids]
    request = ErasureRequest.of(response_corrections=[(s, flip(s.response)) for s in old])
    retain = [s for s in task.train if s.id not in task.corrupted_ids]
    guard = _guard(retain, guard_size, config.seed)
    sets = EvalSets(
        sets={"forget": old, "target": request.new_samples, "retain": retain, "guard": guard, "held_out": list(task.held_out),
              "nonmember": nonmembers},
        kl_sets=("forget", "held_out"), members="forget", nonmembers="nonmember", text=text,
    )
    name = f"label correction ({config.corrupted} of {config.train} labels)"
    tasks = [Task(name, request, list(task.clean), sets, guard, ("held_out_recall", "forget_loss", "kl_held_out", "kl_forget"),
                  reference)]
    return Family("labels", list(task.train), reference, tasks)


