"""A request inside the engine (`Sequence`), what it sends back (`Delta`, `Finished`, `Scored`), and the
`Handle` its caller holds.

The engine thread alone mutates a Sequence once it is admitted; the caller only reads its outbox and may
ask for cancellation through the Handle, which the engine applies at the start of its next step.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from loravault.core.errors import DeadlineExceededError, LoravaultError

from .adapters import AdapterSlot
from .sampling import SamplingParams
from .text import TextStream

__all__ = ["Target", "Delta", "Finished", "Scored", "Sequence", "Handle"]


@dataclass(frozen=True)
class Target:
    """The weights a request runs on: (tenant, adapter, version) and its AdapterSlot, or the base alone."""

    tenant: str
    adapter: str | None  # None: the base model alone
    version: int  # 0 for the base model
    slot: AdapterSlot | None

    @property
    def label(self) -> str:
        return "the base model" if self.adapter is None else f"adapter {self.tenant}/{self.adapter} v{self.version}"


@dataclass(frozen=True)
class Delta:
    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Finished:
    reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int
    version: int
    text: str


@dataclass(frozen=True)
class Scored:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    mean_nll: float
    prompt_tokens: int
    version: int


Event = Delta | Finished | Scored | LoravaultError


@dataclass(eq=False)
class Sequence:
    """One Generate or Score request from admission to its end."""

    id: int
    target: Target
    prompt_ids: list[int]
    deadline: float | None  # time.monotonic() after which it stops with DeadlineExceededError
    params: SamplingParams | None = None  # None: a Score request
    continuation_ids: list[int] = field(default_factory=list)
    text: TextStream | None = None
    generator: torch.Generator | None = None
    outbox: queue.SimpleQueue[Event] = field(default_factory=queue.SimpleQueue)
    row: int | None = None  # its KV-cache row while running
    length: int = 0  # tokens in its KV row (0: not prefilled yet)
    generated: list[int] = field(default_factory=list)
    done: bool = False
    unsent: list[Delta] = field(default_factory=list)  # tokens held back until the next delivery
    delivered_at: float | None = None  # time.monotonic() of the last Delta put in the outbox

    @property
    def tenant(self) -> str:
        return self.target.tenant

    @property
    def is_score(self) -> bool:
        return self.params is None

    @property
    def kv_row(self) -> int:
        """Its KV row; only a running sequence (joined and not yet released) has one."""
        if self.row is None:
            raise RuntimeError(f"request {self.id} holds no KV row: it is not running")
        return self.row

    @property
    def generation(self) -> tuple[SamplingParams, TextStream]:
        """A Generate request's sampling parameters and text stream; a Score request has neither."""
        if self.params is None or self.text is None:
            raise RuntimeError(f"request {self.id} is a Score request: it generates nothing")
        return self.params, self.text

    def send(self, delta: Delta, *, now: float, interval: float, final: bool) -> None:
        """Hold `delta` back, and put everything held as one Delta when it is the first, the last, or at least
        `interval` seconds after the previous delivery.

        Why: waking the caller's thread for every token of every request costs the step thread more than the
        forward itself when steps are short (a small model, or a GPU); a person cannot tell 20 ms batches
        from a steady stream, and no token waits longer than max(interval, one step).
        """
        self.unsent.append(delta)
        if not final and self.delivered_at is not None and now - self.delivered_at < interval:
            return
        held, self.unsent = self.unsent, []
        self.outbox.put(held[0] if len(held) == 1 else
                        Delta(text="".join(d.text for d in held), token_ids=sum((d.token_ids for d in held), ())))
        self.delivered_at = now

    def fail(self, error: LoravaultError) -> None:
        if not self.done:
            self.done = True
            self.outbox.put(error)


class Handle:
    """The caller's side of one request: its events in order, and cancel()."""

    def __init__(self, sequence: Sequence, cancel: Callable[[Sequence], None]) -> None:
        self._sequence = sequence
        self._cancel = cancel

    @property
    def id(self) -> int:
        return self._sequence.id

    def cancel(self) -> None:
        """Stop the request (the client went away); its row and KV cache are freed within one step."""
        self._cancel(self._sequence)

    def events(self, *, timeout: float | None = None) -> Iterator[Delta | Finished]:
        """Deltas, then one Finished; raises the LoravaultError that ended the request instead, if any."""
        while True:
            event = self._next(timeout)
            if isinstance(event, Delta):
                yield event
            elif isinstance(event, Finished):
                yield event
                return

    def result(self, *, timeout: float | None = None) -> Scored:
        """A Score request's result; raises the LoravaultError that ended it instead, if any."""
        event = self._next(timeout)
        assert isinstance(event, Scored), event
        return event

    def _next(self, timeout: float | None) -> Event:
        try:
            event = self._sequence.outbox.get(timeout=timeout)
        except queue.Empty:
            self.cancel()
            raise DeadlineExceededError(f"request {self.id}: no answer within {timeout} s") from None
        if isinstance(event, LoravaultError):
            raise event
        return event
