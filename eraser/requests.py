"""Erasure requests: which training samples leave, change or arrive, as (old, new) pairs.

Every kind is one `Change`: removal (new is None), addition (old is None), query modification (the prompt
differs) and response correction (the response differs). One request may mix kinds.

    >>> old = Sample("s1", "Who is Ada?", "A poet.")
    >>> ErasureRequest.of(removals=[old]).changes[0].kind
    'removal'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from loravault.core import InvalidArgumentError, Sample

__all__ = ["Change", "ErasureRequest"]


@dataclass(frozen=True)
class Change:
    """One sample's move: old is what the adapter was trained on, new is what it should have been trained on."""

    old: Sample | None
    new: Sample | None

    def __post_init__(self) -> None:
        if self.old is None and self.new is None:
            raise InvalidArgumentError("a change needs an old sample, a new sample, or both")
        if self.old is not None and self.new is not None:
            if self.old.id != self.new.id:
                raise InvalidArgumentError(f"a modified sample keeps its id: old {self.old.id!r}, new {self.new.id!r}")
            if self.old == self.new:
                raise InvalidArgumentError(f"sample {self.old.id!r}: old and new versions are identical")

    @property
    def id(self) -> str:
        sample = self.old if self.old is not None else self.new
        assert sample is not None  # __post_init__ guarantees one of them
        return sample.id

    @property
    def kind(self) -> str:
        """removal, addition, query_modification, response_correction or query_and_response."""
        if self.new is None:
            return "removal"
        if self.old is None:
            return "addition"
        prompt, response = self.old.prompt != self.new.prompt, self.old.response != self.new.response
        return "query_and_response" if prompt and response else "query_modification" if prompt else "response_correction"


@dataclass(frozen=True)
class ErasureRequest:
    """A set of changes to the training set, each sample id at most once."""

    changes: tuple[Change, ...]

    def __post_init__(self) -> None:
        if not self.changes:
            raise InvalidArgumentError("an erasure request needs at least one change")
        ids = [c.id for c in self.changes]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate is not None:
            raise InvalidArgumentError(f"sample {duplicate!r} appears in more than one change of the request")

    @classmethod
    def of(
        cls,
        *,
        removals: Iterable[Sample] = (),
        additions: Iterable[Sample] = (),
        query_edits: Iterable[tuple[Sample, str]] = (),
        response_corrections: Iterable[tuple[Sample, str]] = (),
    ) -> ErasureRequest:
        """Build a request from plain lists: edits and corrections are (old sample, new text) pairs."""
        changes = [Change(old=s, new=None) for s in removals]
        changes += [Change(old=None, new=s) for s in additions]
        changes += [Change(old=s, new=replace(s, prompt=text)) for s, text in query_edits]
        changes += [Change(old=s, new=replace(s, response=text)) for s, text in response_corrections]
        return cls(changes=tuple(changes))

    @property
    def old_samples(self) -> list[Sample]:
        """Samples whose influence leaves the adapter (removed ones and the old versions of edited ones)."""
        return [c.old for c in self.changes if c.old is not None]

    @property
    def new_samples(self) -> list[Sample]:
        """Samples whose influence enters the adapter (added ones and the new versions of edited ones)."""
        return [c.new for c in self.changes if c.new is not None]

    @property
    def removed_ids(self) -> frozenset[str]:
        """Ids that leave the training set entirely."""
        return frozenset(c.id for c in self.changes if c.new is None)

    @property
    def touched_ids(self) -> frozenset[str]:
        """Ids whose training-set version changes in any way."""
        return frozenset(c.id for c in self.changes)

    def size_after(self, size_before: int) -> int:
        """The training-set size once the request is applied."""
        added = sum(1 for c in self.changes if c.old is None)
        return size_before - len(self.removed_ids) + added

    def kinds(self) -> dict[str, int]:
        """How many changes of each kind, for reports."""
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        return counts
