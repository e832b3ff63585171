"""The waiting queue: bounded in total and per tenant, served round-robin across tenants.

Round-robin admission means a tenant that floods the queue gets one row each time every other waiting
tenant got one, so another tenant's request waits at most about one sequence's lifetime per tenant ahead of it,
however many requests the flooder queued; the per-tenant bound keeps the flooder from filling the whole queue.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

from loravault.core.errors import ResourceExhaustedError

from .requests import Sequence

__all__ = ["FairQueue"]


class FairQueue:
    """Not thread-safe: the engine guards it with its lock."""

    def __init__(self, *, max_total: int, max_per_tenant: int) -> None:
        self._max_total, self._max_per_tenant = max_total, max_per_tenant
        self._by_tenant: OrderedDict[str, deque[Sequence]] = OrderedDict()
        self._count = 0

    def push(self, sequence: Sequence) -> None:
        """Queue `sequence`; ResourceExhaustedError when the queue or the tenant's share of it is full."""
        if self._count >= self._max_total:
            raise ResourceExhaustedError(
                f"the inference queue is full ({self._max_total} requests waiting); retry later")
        waiting = self._by_tenant.setdefault(sequence.tenant, deque())
        if len(waiting) >= self._max_per_tenant:
            raise ResourceExhaustedError(
                f"tenant {sequence.tenant!r} already has {self._max_per_tenant} requests waiting; retry later")
        waiting.append(sequence)
        self._count += 1

    def pop(self) -> Sequence | None:
        """The next sequence: the head of the first tenant in rotation, which then moves to the back."""
        if not self._by_tenant:
            return None
        tenant, waiting = next(iter(self._by_tenant.items()))
        sequence = waiting.popleft()
        self._count -= 1
        del self._by_tenant[tenant]
        if waiting:
            self._by_tenant[tenant] = waiting  # to the back of the rotation
        return sequence

    def peek(self) -> Sequence | None:
        return next(iter(self._by_tenant.values()))[0] if self._by_tenant else None

    def remove(self, matches: Callable[[Sequence], bool]) -> list[Sequence]:
        """Take out every waiting sequence that `matches` (cancelled, expired, purged)."""
        removed: list[Sequence] = []
        for tenant in list(self._by_tenant):
            kept: deque[Sequence] = deque()
            for sequence in self._by_tenant[tenant]:
                (removed if matches(sequence) else kept).append(sequence)
            if kept:
                self._by_tenant[tenant] = kept
            else:
                del self._by_tenant[tenant]
        self._count -= len(removed)
        return removed

    def items(self) -> list[Sequence]:
        return [sequence for waiting in self._by_tenant.values() for sequence in waiting]

    def __len__(self) -> int:
        return self._count
