"""The Inference service: Generate (server-streaming token deltas, then a done message) and Score (unary).

Thin: resolve the caller's tenant, turn the wire request into engine arguments, relay the engine's events.
When the client goes away (cancel, deadline, disconnect), gRPC runs the callback registered here and the
engine frees the request's row and KV cache within one step.
"""

from __future__ import annotations

from collections.abc import Iterator

from loravault.core.errors import InvalidArgumentError, UnavailableError
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc

from ..inference import Delta, InferenceEngine, SamplingParams
from .auth import PrincipalContext, is_admin, tenant_scope
from .edge import streaming_response, unary
from .state import ServerState

__all__ = ["InferenceService"]

_ADMIN_BASE_TENANT = "(admin)"  # the fairness key of an admin asking for the base model alone


class InferenceService(pb_grpc.InferenceServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    @streaming_response
    def Generate(self, request: pb.GenerateRequest, context: PrincipalContext) -> Iterator[pb.GenerateEvent]:
        engine = self._engine()
        tenant, adapter, version = _model(request.model, context)
        handle = engine.generate(tenant=tenant, adapter=adapter, version=version, prompt=request.prompt,
                                 params=_sampling(request.sampling, engine), timeout=context.time_remaining())
        context.add_callback(handle.cancel)
        for event in handle.events():
            if isinstance(event, Delta):
                yield pb.GenerateEvent(delta=pb.GenerateDelta(text=event.text, token_ids=event.token_ids))
            else:
                yield pb.GenerateEvent(done=pb.GenerateDone(
                    finish_reason=event.reason, prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens, version=event.version, text=event.text))

    @unary
    def Score(self, request: pb.ScoreRequest, context: PrincipalContext) -> pb.ScoreResponse:
        engine = self._engine()
        tenant, adapter, version = _model(request.model, context)
        handle = engine.score(tenant=tenant, adapter=adapter, version=version, prompt=request.prompt,
                              continuation=request.continuation, timeout=context.time_remaining())
        context.add_callback(handle.cancel)
        result = handle.result()
        return pb.ScoreResponse(mean_nll=result.mean_nll, token_logprobs=result.logprobs, token_ids=result.token_ids,
                                version=result.version, prompt_tokens=result.prompt_tokens)

    def _engine(self) -> InferenceEngine:
        if self._state.inference is None:
            raise UnavailableError("this server was started without the inference engine")
        return self._state.inference


def _model(model: pb.ModelRef, context: PrincipalContext) -> tuple[str, str | None, int]:
    """(tenant, adapter or None for the base alone, version) after the tenant check of every other call."""
    if model.base_only:
        if model.ref.adapter or model.version:
            raise InvalidArgumentError("base_only requests name no adapter and no version")
        principal = context.principal
        if is_admin(principal) and not model.ref.tenant:
            return _ADMIN_BASE_TENANT, None, 0
        return tenant_scope(principal, model.ref.tenant), None, 0
    if not model.ref.adapter:
        raise InvalidArgumentError("name an adapter (model.ref.adapter) or set model.base_only")
    return tenant_scope(context.principal, model.ref.tenant), model.ref.adapter, model.version


def _sampling(sampling: pb.SamplingParams, engine: InferenceEngine) -> SamplingParams:
    top_p = sampling.top_p if sampling.top_p > 0 else 1.0
    return SamplingParams(temperature=sampling.temperature, top_p=top_p, top_k=sampling.top_k, seed=sampling.seed,
                          max_new_tokens=sampling.max_new_tokens or engine.config.default_new_tokens,
                          stop=tuple(sampling.stop))
