"""Fictitious facts: made-up entities with attributes, as question/answer samples plus unseen paraphrases.

Nothing here exists in a pretraining corpus (names and places are built from random syllables), so whatever
the adapter knows about an entity it learned from these samples; a retrained adapter that never saw an entity
can only guess, which is what an erased one should do too.

    >>> world = make_world(entities=3, attributes=2, seed=0)
    >>> len(world.entities), len(world.facts(world.entities[0]))
    (3, 2)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loravault.core import InvalidArgumentError, Sample

__all__ = ["ATTRIBUTES", "Entity", "World", "make_world"]

_SYLLABLES = ("bra", "dov", "el", "fen", "gor", "hal", "ith", "jas", "kel", "lum", "mor", "nib", "ost", "pel",
              "quo", "ras", "sil", "tor", "ul", "vek", "wyn", "xal", "yor", "zim")


@dataclass(frozen=True)
class Attribute:
    """One kind of fact: its question, a paraphrase never trained on, and the values it draws from."""

    key: str
    question: str  # "{name}" is replaced by the entity's name
    paraphrase: str
    values: tuple[str, ...]  # short answers; "" means a made-up place name is drawn instead


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("city", "Where does {name} live?", "In which town is {name}'s home?", ()),
    Attribute("job", "What is {name}'s job?", "What does {name} do for a living?",
              ("baker", "pilot", "tailor", "nurse", "farmer", "judge", "miner", "poet", "chemist", "sailor")),
    Attribute("colour", "What is {name}'s favourite colour?", "Which colour does {name} like best?",
              ("amber", "teal", "crimson", "violet", "ochre", "cobalt", "olive", "scarlet", "indigo", "silver")),
    Attribute("pet", "What pet does {name} keep?", "Which animal lives with {name}?",
              ("ferret", "parrot", "tortoise", "goat", "hamster", "owl", "rabbit", "lizard", "donkey", "pony")),
)


@dataclass(frozen=True)
class Entity:
    """A made-up person and their attribute values, keyed by attribute."""

    key: str  # stable id prefix, e.g. "e007"
    name: str
    values: tuple[tuple[str, str], ...]  # (attribute key, value)


@dataclass(frozen=True)
class World:
    """All generated entities; the benchmark splits them into trained, reference and membership-test groups."""

    entities: tuple[Entity, ...]
    attributes: tuple[Attribute, ...]

    def facts(self, entity: Entity) -> list[Sample]:
        """The entity's trained questions, one per attribute (id "<entity>-<attribute>")."""
        return [Sample(f"{entity.key}-{a.key}", a.question.format(name=entity.name), v)
                for a, (_, v) in zip(self.attributes, entity.values)]

    def paraphrases(self, entity: Entity) -> list[Sample]:
        """The same facts asked another way; never trained on, so recall here measures generalization."""
        return [Sample(f"{entity.key}-{a.key}-para", a.paraphrase.format(name=entity.name), v)
                for a, (_, v) in zip(self.attributes, entity.values)]

    def all_facts(self, entities: tuple[Entity, ...] | list[Entity]) -> list[Sample]:
        return [s for e in entities for s in self.facts(e)]

    def all_paraphrases(self, entities: tuple[Entity, ...] | list[Entity]) -> list[Sample]:
        return [s for e in entities for s in self.paraphrases(e)]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


def make_world(*, entities: int, attributes: int, seed: int) -> World:
    """`entities` people with distinct names, each with the first `attributes` attributes; fully seeded."""
    if not 1 <= attributes <= len(ATTRIBUTES) or entities < 1:
        raise InvalidArgumentError(f"need entities >= 1 and 1..{len(ATTRIBUTES)} attributes, got {entities}, {attributes}")
    rng = random.Random(seed)
    chosen = ATTRIBUTES[:attributes]
    names: set[str] = set()
    people = []
    for index in range(entities):
        name = f"{_word(rng, 2)} {_word(rng, 2)}"
        while name in names:
            name = f"{_word(rng, 2)} {_word(rng, 2)}"
        names.add(name)
        values = tuple((a.key, rng.choice(a.values) if a.values else _word(rng, 2)) for a in chosen)
        people.append(Entity(f"e{index:03d}", name, values))
    return World(tuple(people), chosen)
