"""Generation and scoring on the server: the streaming `Generation` iterator and the `ScoreResult` record.

    >>> for text in vault.generate("support", "Q: who?\\nA:", max_new_tokens=32):
    ...     print(text, end="", flush=True)

Stopping the iteration early (break, close, garbage collection) cancels the call, and the server frees the
request's batch row at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from loravault.proto import loravault_pb2 as pb
from loravault.proto.errors import DataLossError

from .errors import from_rpc_error

__all__ = ["Generation", "GenerationDone", "ScoreResult", "model_ref", "sampling_params"]


@dataclass(frozen=True)
class GenerationDone:
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int
    version: int  # the adapter version that served the request (0: the base model alone)
    text: str


@dataclass(frozen=True)
class ScoreResult:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    mean_nll: float
    prompt_tokens: int
    version: int


class Generation:
    """An iterator of text deltas; after it ends, `done` holds the final message and `token_ids` every token."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.done: GenerationDone | None = None
        self.token_ids: list[int] = []

    def __iter__(self) -> Iterator[str]:
        try:
            for event in self._call:
                if event.WhichOneof("event") == "delta":
                    self.token_ids.extend(event.delta.token_ids)
                    yield event.delta.text
                else:
                    d = event.done
                    self.done = GenerationDone(d.finish_reason, d.prompt_tokens, d.completion_tokens, d.version,
                                               d.text)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            self._call.cancel()  # a no-op once the stream ended; frees the server's row when we stop early

    def text(self) -> str:
        """Run the generation to its end and return the whole completion."""
        return "".join(self)

    def finished(self) -> GenerationDone:
        """`done`, once the generation has run to its end; DataLossError when the stream ended without it."""
        if self.done is None:
            raise DataLossError("the generation stream ended without its final message")
        return self.done

    def cancel(self) -> None:
        self._call.cancel()


def model_ref(adapter: str | None, *, version: int, tenant: str) -> pb.ModelRef:
    if adapter is None:
        return pb.ModelRef(ref=pb.AdapterRef(tenant=tenant), base_only=True)
    return pb.ModelRef(ref=pb.AdapterRef(tenant=tenant, adapter=adapter), version=version)


def sampling_params(*, max_new_tokens: int, temperature: float, top_p: float, top_k: int, seed: int,
                    stop: Sequence[str]) -> pb.SamplingParams:
    return pb.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                             seed=seed, stop=list(stop))


def score_result(response: pb.ScoreResponse) -> ScoreResult:
    return ScoreResult(tuple(response.token_ids), tuple(response.token_logprobs), response.mean_nll,
                       response.prompt_tokens, response.version)
