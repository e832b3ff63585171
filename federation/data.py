"""Each client's private data: made-up people (non-IID: every client has its own people and its own kinds of
facts), as question/answer samples, plus paraphrased questions never trained on (held out).

Names are built from random syllables, so whatever the shared adapter knows about a person it learned from
the client that holds them. Partitions are a pure function of (partition id, facts per client, seed): a
client rebuilds its own partition on its own machine, and nothing but the trained adapter leaves it.

    >>> part = partition(partition_id=0, facts=4, seed=0)
    >>> len(part.train), part.train[0].id
    (4, 'p0-f000')
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loravault.core import InvalidArgumentError, Sample

__all__ = ["Partition", "partition", "union"]

_SYLLABLES = ("bra", "dov", "el", "fen", "gor", "hal", "ith", "jas", "kel", "lum", "mor", "nib", "ost", "pel",
              "quo", "ras", "sil", "tor", "ul", "vek", "wyn", "xal", "yor", "zim")
# (question, held-out paraphrase, answers): client k asks kinds k and k+1 (mod 4), so kinds differ by client
_KINDS = (
    ("Where does {name} live?", "In which town is {name}'s home?", ()),
    ("What is {name}'s job?", "What does {name} do for a living?",
     ("baker", "pilot", "tailor", "nurse", "farmer", "judge", "miner", "poet", "chemist", "sailor")),
    ("What pet does {name} keep?", "Which animal lives with {name}?",
     ("ferret", "parrot", "tortoise", "goat", "hamster", "owl", "rabbit", "lizard", "donkey", "pony")),
    ("What is {name}'s favourite colour?", "Which colour does {name} like best?",
     ("amber", "teal", "crimson", "violet", "ochre", "cobalt", "olive", "scarlet", "indigo", "silver")),
)


@dataclass(frozen=True)
class Partition:
    """One client's facts: `train` (what it trains on) and `paraphrases` (same facts, unseen wording)."""

    partition_id: int
    train: tuple[Sample, ...]
    paraphrases: tuple[Sample, ...]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


def partition(*, partition_id: int, facts: int, seed: int = 0) -> Partition:
    """The facts of client `partition_id`: `facts` samples about its own made-up people."""
    if partition_id < 0 or facts < 1:
        raise InvalidArgumentError(f"partition id must be >= 0 and facts >= 1, got {partition_id}, {facts}")
    rng = random.Random(f"loravault-federation/{seed}/{partition_id}")
    train, paraphrases = [], []
    for index in range(facts):
        question, paraphrase, answers = _KINDS[(partition_id + index % 2) % len(_KINDS)]
        name = f"{_word(rng, 2)} {_word(rng, 2)}"
        answer = rng.choice(answers) if answers else _word(rng, 3)
        sample_id = f"p{partition_id}-f{index:03d}"
        train.append(Sample(id=sample_id, prompt=question.format(name=name), response=f" {answer}."))
        paraphrases.append(Sample(id=f"{sample_id}-para", prompt=paraphrase.format(name=name),
                                  response=f" {answer}."))
    return Partition(partition_id, tuple(train), tuple(paraphrases))


def union(partitions: list[Partition]) -> list[Sample]:
    """Every client's training samples together: the centralized reference trains on this."""
    return [s for p in partitions for s in p.train]
