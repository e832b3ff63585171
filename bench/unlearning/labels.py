"""A labelling task the adapter generalizes on: warm or cool colours, with some training labels corrupted.

Each sample describes a made-up object by its colour; the label follows a rule (warm or cool colour) that a
pretrained model can learn from a few dozen examples and apply to unseen objects. A seeded share of the
training labels is flipped. Correcting those labels (a response-correction request) should move the adapter
towards the one retrained on clean labels, which is measured by accuracy on held-out samples: the setting of
the paper's label-noise experiments, where the adapter generalizes rather than memorizes.

    >>> task = make_label_task(train=8, held_out=4, corrupted=2, seed=0)
    >>> len(task.train), len(task.corrupted_ids), len(task.held_out)
    (8, 2, 4)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from loravault.core import InvalidArgumentError, Sample

__all__ = ["LabelTask", "flip", "make_label_task"]

WARM = ("red", "orange", "yellow", "pink", "golden", "crimson")
COOL = ("blue", "green", "purple", "teal", "navy", "cyan")
_SYLLABLES = ("zor", "quil", "mab", "tesh", "vun", "plo", "krin", "dax", "wem", "fip", "gral", "hob")


@dataclass(frozen=True)
class LabelTask:
    """Training samples (some with flipped labels), their clean versions, and held-out samples (clean)."""

    train: tuple[Sample, ...]  # as trained on: corrupted_ids carry the wrong label
    clean: tuple[Sample, ...]  # the same ids with correct labels
    held_out: tuple[Sample, ...]  # unseen objects, correct labels
    reference: tuple[Sample, ...]  # unseen objects with wrong labels: the loss a never-trained wrong label gets
    corrupted_ids: tuple[str, ...]


def flip(label: str) -> str:
    """The other label."""
    return "cool" if label == "warm" else "warm"


def _sample(rng: random.Random, key: str) -> Sample:
    warm = rng.random() < 0.5
    colour = rng.choice(WARM if warm else COOL)
    noun = "".join(rng.choice(_SYLLABLES) for _ in range(2))
    return Sample(key, f"The {noun} is {colour}. Is its colour warm or cool?", "warm" if warm else "cool")


def make_label_task(*, train: int, held_out: int, corrupted: int, seed: int, reference: int = 8) -> LabelTask:
    """Seeded task: `corrupted` of the `train` samples get the flipped label."""
    if not 0 < corrupted < train or held_out < 1 or reference < 1:
        raise InvalidArgumentError(f"need 0 < corrupted < train and held-out, reference >= 1; got {corrupted}, {train}")
    rng = random.Random(seed)
    clean = [_sample(rng, f"t{i:03d}") for i in range(train)]
    unseen = [_sample(rng, f"h{i:03d}") for i in range(held_out)]
    wrong = [replace(s, response=flip(s.response)) for s in (_sample(rng, f"r{i:03d}") for i in range(reference))]
    corrupted_ids = tuple(sorted(s.id for s in rng.sample(clean, corrupted)))
    trained = [replace(s, response=flip(s.response)) if s.id in corrupted_ids else s for s in clean]
    return LabelTask(tuple(trained), tuple(clean), tuple(unseen), tuple(wrong), corrupted_ids)
