"""The inference engine: continuous batching of many tenants' requests over one base model.

One engine thread runs steps. Between two steps, under the engine's lock (never during a forward), it applies
cancellations and deadlines (freeing rows), lets waiting requests join free rows round-robin across tenants,
and after the step it hands every sequence its token. Requests join and leave between any two decode steps
(Orca, OSDI '22); the prompts of joining sequences are prefilled in the same forward that decodes the running
ones (forward.py). No step ever sets a global adapter: each row carries its own.

    >>> engine = InferenceEngine(base, vault=vault, config=InferenceConfig())
    >>> engine.start()
    >>> handle = engine.generate(tenant="acme", adapter="support", version=0, prompt="Hi", params=SamplingParams())
    >>> text = "".join(e.text for e in handle.events() if isinstance(e, Delta))

The engine is a PurgeListener (server/events.py): an erasure, an adapter deletion or a tenant deletion
refuses the affected waiting requests at once and cancels running ones before their next token is sent.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from loravault.core import BaseModel
from loravault.core.errors import (AbortedError, DeadlineExceededError, InvalidArgumentError, LoravaultError,
                                   NotFoundError, UnavailableError)

from ..vault import Vault
from .adapters import ModelLayout
from .cache import AdapterCache
from .config import InferenceConfig
from .forward import Prefill, StepBatch, StepModel
from .kv import KVCache
from .requests import Delta, Finished, Handle, Scored, Sequence, Target
from .resolve import Resolver
from .sampling import SamplingParams, greedy, sample
from .scheduler import FairQueue
from .stacks import LoraStacks
from .text import SharedTokenizer, TextStream

__all__ = ["InferenceEngine", "EngineStats"]

logger = logging.getLogger(__name__)
_RESOLVE_ATTEMPTS = 3


@dataclass(frozen=True)
class EngineStats:
    running: int
    waiting: int
    free_rows: int
    cached_adapters: int
    cache_bytes: int  # adapter weights in the LRU cache (at most config.cache_bytes)
    kv_bytes: int  # the KV cache, allocated whole at start: max_batch x max_seq_len tokens
    stack_bytes: int  # the gathered LoRA stacks of the running batch
    steps: int


class InferenceEngine:
    """Owns the KV cache, the LoRA stacks, the adapter cache and the step thread; one per server."""

    def __init__(self, base: BaseModel, *, vault: Vault, config: InferenceConfig) -> None:
        model = base.model
        first = next(model.parameters())
        if first.device != config.torch_device or first.dtype != config.torch_dtype:
            # transformers types PreTrainedModel.to through functools.wraps, which mypy reads without `self`
            model = copy.deepcopy(model).to(device=config.torch_device, dtype=config.torch_dtype)  # type: ignore[call-arg]
        model.eval()
        self.config = config
        self._tokenizer = SharedTokenizer(base.tokenizer)
        self._eos = base.tokenizer.eos_token_id
        mc, layout = model.config, ModelLayout.of(model)
        head_dim = getattr(mc, "head_dim", None) or mc.hidden_size // mc.num_attention_heads
        device, dtype = config.torch_device, config.torch_dtype
        self._kv = KVCache(n_layers=mc.num_hidden_layers, rows=config.max_batch, n_kv_heads=mc.num_key_value_heads,
                           max_len=config.max_seq_len, head_dim=head_dim, device=device, dtype=dtype)
        self._stacks = LoraStacks(rows=config.max_batch, layout=layout, device=device, dtype=dtype)
        self._step = StepModel(model, kv=self._kv, stacks=self._stacks)
        self.cache = AdapterCache(budget_bytes=config.cache_bytes)
        self._resolver = Resolver(vault=vault, cache=self.cache, layout=layout, device=device, dtype=dtype)
        self._cond = threading.Condition()
        self._waiting = FairQueue(max_total=config.max_waiting, max_per_tenant=config.max_waiting_per_tenant)
        self._running: dict[int, Sequence] = {}  # KV row -> sequence; mutated by the engine thread only
        self._cancel: dict[Sequence, LoravaultError] = {}
        self._epoch = 0  # bumped by every purge, so a request resolved across one is resolved again
        self._ids = itertools.count(1)
        self._stopping = False
        self._steps = 0
        self._thread = threading.Thread(target=self._loop, name="inference-engine", daemon=True)

    # lifecycle

    def start(self) -> None:
        """Start the step thread; logs the device memory the engine holds beside the base model's weights."""
        logger.info("inference engine on %s: KV cache %.0f MiB (%d rows x %d tokens), adapter cache budget %.0f MiB",
                 self.config.device, self._kv.nbytes / 2**20, self.config.max_batch, self.config.max_seq_len,
                 self.config.cache_bytes / 2**20)
        self._thread.start()

    def close(self) -> None:
        """Refuse new requests, end every waiting and running one with UnavailableError, stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def stats(self) -> EngineStats:
        with self._cond:
            return EngineStats(running=len(self._running), waiting=len(self._waiting), free_rows=self._kv.free_rows,
                               cached_adapters=len(self.cache), cache_bytes=self.cache.nbytes,
                               kv_bytes=self._kv.nbytes, stack_bytes=self._stacks.nbytes, steps=self._steps)

    def in_flight(self) -> set[tuple[str, str, int]]:
        """(tenant, adapter, version) of every waiting or running request on an adapter (the purge watch reads
        these against the database)."""
        with self._cond:
            sequences = [*self._waiting.items(), *self._running.values()]
        return {(s.target.tenant, s.target.adapter, s.target.version) for s in sequences
                if s.target.adapter is not None and not s.done}

    # requests

    def generate(self, *, tenant: str, adapter: str | None, version: int, prompt: str, params: SamplingParams,
                 timeout: float | None = None) -> Handle:
        """Queue a generation; raises InvalidArgumentError (caps), NotFoundError, FailedPreconditionError
        (purged version), ResourceExhaustedError (queue full) or UnavailableError (shutting down) at once."""
        config = self.config
        if params.max_new_tokens > config.max_new_tokens:
            raise InvalidArgumentError(
                f"max_new_tokens {params.max_new_tokens} exceeds this server's cap of {config.max_new_tokens}")
        ids = self._encode(prompt, what="prompt")
        if len(ids) + params.max_new_tokens > config.max_seq_len:
            raise InvalidArgumentError(f"prompt of {len(ids)} tokens plus max_new_tokens {params.max_new_tokens} "
                                       f"exceeds the server's sequence length {config.max_seq_len}")

        def build(target: Target) -> Sequence:
            return Sequence(id=next(self._ids), target=target, prompt_ids=ids, deadline=_deadline(timeout),
                            params=params, text=TextStream(self._tokenizer, stop=params.stop),
                            generator=params.generator())

        return self._submit(tenant=tenant, adapter=adapter, version=version, build=build)

    def score(self, *, tenant: str, adapter: str | None, version: int, prompt: str, continuation: str,
              timeout: float | None = None) -> Handle:
        """Queue the scoring of `continuation` after `prompt`; errors as for generate."""
        prompt_ids = self._encode(prompt, what="prompt")
        continuation_ids = self._tokenizer.encode(continuation, special_tokens=False)
        if not continuation_ids:
            raise InvalidArgumentError("the continuation to score is empty")
        if len(prompt_ids) + len(continuation_ids) > self.config.max_prompt_tokens:
            raise InvalidArgumentError(f"prompt and continuation are {len(prompt_ids) + len(continuation_ids)} "
                                       f"tokens; this server scores at most {self.config.max_prompt_tokens}")

        def build(target: Target) -> Sequence:
            return Sequence(id=next(self._ids), target=target, prompt_ids=prompt_ids, deadline=_deadline(timeout),
                            continuation_ids=list(continuation_ids))

        return self._submit(tenant=tenant, adapter=adapter, version=version, build=build)

    def _encode(self, text: str, *, what: str) -> list[int]:
        ids = self._tokenizer.encode(text)
        if not ids:
            raise InvalidArgumentError(f"the {what} is empty: it must have at least one token")
        if len(ids) > self.config.max_prompt_tokens:
            raise InvalidArgumentError(
                f"the {what} has {len(ids)} tokens; this server accepts at most {self.config.max_prompt_tokens}")
        return ids

    def _submit(self, *, tenant: str, adapter: str | None, version: int,
                build: Callable[[Target], Sequence]) -> Handle:
        for _ in range(_RESOLVE_ATTEMPTS):
            with self._cond:
                epoch = self._epoch
            target = self._resolver.resolve(tenant=tenant, adapter=adapter, version=version)
            with self._cond:
                if self._stopping:
                    raise UnavailableError("the inference engine is shutting down")
                if self._epoch != epoch:
                    continue  # a purge landed while we resolved: look the version up again
                sequence = build(target)
                self._waiting.push(sequence)
                self._cond.notify_all()
                return Handle(sequence, self._request_cancel)
        raise AbortedError(f"adapter {tenant}/{adapter} changed while the request was admitted; retry")

    def _request_cancel(self, sequence: Sequence) -> None:
        self._mark(lambda s: s is sequence, lambda s: AbortedError(f"request {s.id} was cancelled by its caller"))

    # purge events (PurgeListener)

    def adapter_purged(self, *, tenant: str, adapter: str, floor: int) -> None:
        def matches(target: Target) -> bool:
            return target.tenant == tenant and target.adapter == adapter and target.version < floor

        self._invalidate(matches, lambda s: AbortedError(
            f"{s.target.label} was purged by an erasure committed at v{floor}; the generation was cancelled so "
            "the erased data stops flowing out. Retry on the head (version 0)"))
        self.cache.drop_owners(lambda o: o[0] == tenant and o[1] == adapter and o[2] < floor)

    def adapter_deleted(self, *, tenant: str, adapter: str) -> None:
        self._invalidate(lambda t: t.tenant == tenant and t.adapter == adapter,
                         lambda s: NotFoundError(f"{s.target.label} was deleted; the generation was cancelled"))
        self.cache.drop_owners(lambda o: o[0] == tenant and o[1] == adapter)

    def tenant_deleted(self, *, tenant: str) -> None:
        self._invalidate(lambda t: t.tenant == tenant,
                         lambda s: NotFoundError(f"tenant {tenant!r} was deleted; the generation was cancelled"))
        self.cache.drop_owners(lambda o: o[0] == tenant)

    def _invalidate(self, matches: Callable[[Target], bool], error: Callable[[Sequence], LoravaultError]) -> None:
        with self._cond:
            self._epoch += 1
        self._mark(lambda s: matches(s.target), error)

    def _mark(self, matches: Callable[[Sequence], bool], error: Callable[[Sequence], LoravaultError]) -> None:
        """Refuse matching waiting sequences now; running ones stop before the engine sends them anything more."""
        with self._cond:
            for sequence in self._waiting.remove(lambda s: matches(s) and not s.done):
                sequence.fail(error(sequence))
            for sequence in self._running.values():
                if matches(sequence) and not sequence.done and sequence not in self._cancel:
                    self._cancel[sequence] = error(sequence)
            self._cond.notify_all()

    # the step thread

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._running and not len(self._waiting):
                    self._cond.wait()
                if self._stopping:
                    self._fail_all_locked(UnavailableError("the inference engine is shutting down"))
                    return
                freed = self._reap_locked(time.monotonic())
                joined = self._join_locked()
            for row in freed:
                self._stacks.clear(row)
            for sequence in joined:
                self._stacks.assign(sequence.kv_row, sequence.target.slot)
            self._run_step()

    def _reap_locked(self, now: float) -> list[int]:
        """Apply cancellations and deadlines: free their rows, tell their callers; returns the freed rows."""
        for sequence in self._waiting.remove(lambda s: s.deadline is not None and s.deadline < now):
            sequence.fail(DeadlineExceededError(f"request {sequence.id} waited past its deadline"))
        freed = []
        for row, sequence in list(self._running.items()):
            error = self._cancel.pop(sequence, None)
            if error is None and sequence.deadline is not None and sequence.deadline < now:
                error = DeadlineExceededError(f"request {sequence.id} ran past its deadline")
            if error is not None:
                sequence.fail(error)
                freed.append(self._release_locked(sequence))
        self._cancel = {s: e for s, e in self._cancel.items() if not s.done}
        return freed

    def _join_locked(self) -> list[Sequence]:
        joined = []
        while self._kv.free_rows and (sequence := self._waiting.pop()) is not None:
            sequence.row = row = self._kv.allocate()
            self._running[row] = sequence
            joined.append(sequence)
        return joined

    def _release_locked(self, sequence: Sequence) -> int:
        row = sequence.kv_row
        del self._running[row]
        self._kv.release(row)
        sequence.row = None
        return row

    def _fail_all_locked(self, error: LoravaultError) -> None:
        for sequence in self._waiting.remove(lambda s: True):
            sequence.fail(error)
        for sequence in list(self._running.values()):
            sequence.fail(error)
            self._release_locked(sequence)

    def _plan(self) -> tuple[StepBatch, list[Sequence], list[Sequence]] | None:
        """The next step: every prefilled sequence decodes; prompts join while the step's token budget lasts."""
        device = self._kv.keys[0].device
        decoding = [s for s in self._running.values() if s.length > 0]
        prefilling, budget = [], self.config.max_step_tokens
        for sequence in sorted((s for s in self._running.values() if s.length == 0), key=lambda s: s.id):
            size = len(sequence.prompt_ids) + len(sequence.continuation_ids)
            if size > budget:
                break
            prefilling.append(sequence)
            budget -= size
        if not decoding and not prefilling:
            return None
        rows = max((s.kv_row for s in decoding), default=-1) + 1
        tokens, positions = [0] * rows, [0] * rows  # lists, then one tensor each: not one tensor write per row
        for sequence in decoding:
            tokens[sequence.kv_row] = sequence.generated[-1]
            positions[sequence.kv_row] = sequence.length
        prefills = [Prefill(row=s.kv_row, tokens=torch.tensor(s.prompt_ids + s.continuation_ids, device=device),
                            all_logits=s.is_score) for s in prefilling]
        return (StepBatch(torch.tensor(tokens, dtype=torch.long, device=device),
                          torch.tensor(positions, dtype=torch.long, device=device), prefills), decoding, prefilling)

    def _run_step(self) -> None:
        plan = self._plan()
        if plan is None:
            return
        batch, decoding, prefilling = plan
        try:
            logits = self._step.forward(batch)  # (M, V)
        except Exception as exc:  # a bug in a step must not silently stall every caller
            logger.exception("inference step failed")
            with self._cond:
                for sequence in (*decoding, *prefilling):
                    sequence.fail(LoravaultError(f"inference step failed: {type(exc).__name__}"))
                    self._stacks.clear(self._release_locked(sequence))
            return
        self._steps += 1
        outcomes = self._outcomes(batch, decoding, prefilling, logits)
        freed = []
        with self._cond:
            for sequence, outcome in outcomes:
                if sequence.done or sequence in self._cancel:
                    continue  # cancelled during the step: nothing more is sent; _reap frees it
                if isinstance(outcome, Scored):
                    sequence.outbox.put(outcome)
                    sequence.done = True
                elif self._advance(sequence, outcome):
                    continue
                freed.append(self._release_locked(sequence))
        for row in freed:
            self._stacks.clear(row)

    def _outcomes(self, batch: StepBatch, decoding: list[Sequence], prefilling: list[Sequence],
                  logits: torch.Tensor) -> list[tuple[Sequence, int | Scored]]:
        """Each sequence's next token (or a Score result), chosen from its own logits row."""
        picks: list[tuple[Sequence, int]] = [(s, s.kv_row) for s in decoding]
        for sequence in decoding:
            sequence.length += 1  # the token fed this step is in its KV row now
        offset, scored = batch.n_decode, []
        for sequence in prefilling:
            size = len(sequence.prompt_ids) + len(sequence.continuation_ids)
            sequence.length = size
            if sequence.is_score:
                scored.append((sequence, _score(sequence, logits[offset:offset + size])))
                offset += size
            else:
                picks.append((sequence, offset))
                offset += 1
        greedy_rows = [(s, i) for s, i in picks if s.generation[0].temperature == 0]
        chosen = dict(zip((s for s, _ in greedy_rows),
                          greedy(logits[[i for _, i in greedy_rows]]) if greedy_rows else []))
        for sequence, index in picks:
            if sequence not in chosen:
                chosen[sequence] = sample(logits[index], sequence.generation[0], sequence.generator)
        return [*((s, chosen[s]) for s, _ in picks), *scored]

    def _advance(self, sequence: Sequence, token: int) -> bool:
        """Record and send `token`; True while the sequence goes on, False when it finished."""
        params, stream = sequence.generation
        sequence.generated.append(token)
        text = stream.push(token)
        reason = None
        if (token == self._eos and not params.ignore_eos) or stream.stopped:
            reason = "stop"
        elif len(sequence.generated) >= params.max_new_tokens or sequence.length + 1 >= self._kv.max_len:
            reason = "length"
        if reason is not None:
            text += stream.flush()
        sequence.send(Delta(text=text, token_ids=(token,)), now=time.monotonic(),
                      interval=self.config.stream_interval_s, final=reason is not None)
        if reason is None:
            return True
        sequence.outbox.put(Finished(reason=reason, prompt_tokens=len(sequence.prompt_ids),
                                     completion_tokens=len(sequence.generated), version=sequence.target.version,
                                     text=stream.text))
        sequence.done = True
        return False


def _score(sequence: Sequence, logits: torch.Tensor) -> Scored:
    """Log-probabilities of the continuation's tokens from a (P + C, V) block of prefill logits."""
    start = len(sequence.prompt_ids)
    ids = torch.tensor(sequence.continuation_ids, device=logits.device)  # (C,)
    logprobs = torch.log_softmax(logits[start - 1:-1].float(), dim=-1)  # (C, V): position t predicts token t+1
    picked = logprobs.gather(1, ids.unsqueeze(1)).squeeze(1).cpu()  # (C,)
    return Scored(token_ids=tuple(sequence.continuation_ids), logprobs=tuple(picked.tolist()),
                  mean_nll=float(-picked.mean()), prompt_tokens=start, version=sequence.target.version)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
