"""The inference engine's configuration: device, dtype, batch and queue bounds, cache budget, request caps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loravault.core.errors import InvalidArgumentError

__all__ = ["InferenceConfig", "DTYPES"]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class InferenceConfig:
    """Every bound on the work one request or the whole engine may take; built once in main()."""

    # where the model runs (the same code on CPU and CUDA)
    device: str = "cpu"  # a torch device string: cpu, cuda, cuda:1
    dtype: str = "float32"  # compute dtype of the base and the adapters: float32 | float16 | bfloat16
    # the running batch
    max_batch: int = 32  # sequences decoding together; each holds one KV-cache row
    max_seq_len: int = 512  # prompt + completion tokens one KV-cache row holds
    max_step_tokens: int = 2048  # prompt tokens prefilled in one step (bounds a step's latency)
    # admission
    max_waiting: int = 256  # requests queued for a row; past it RESOURCE_EXHAUSTED
    max_waiting_per_tenant: int = 64  # one tenant's share of the queue, so a flood cannot fill it
    # per-request caps
    max_new_tokens: int = 256  # the largest max_new_tokens a request may ask for
    default_new_tokens: int = 64  # when the request leaves max_new_tokens at 0
    max_prompt_tokens: int = 384  # longer prompts (or prompt + continuation for Score) are refused
    # streaming: a request's tokens are sent together until this long after its previous message
    stream_interval_s: float = 0.02
    # the adapter cache
    cache_bytes: int = 256 << 20  # adapter weights held on the device, in bytes (LRU beyond)
    # how soon another replica's purge cancels generations in flight here (server/inference/purge_watch.py)
    purge_poll_s: float = 0.1

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidArgumentError(f"inference dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise InvalidArgumentError(f"inference device {self.device!r} is not a torch device") from exc
        for name in ("max_batch", "max_seq_len", "max_step_tokens", "max_waiting", "max_waiting_per_tenant",
                     "max_new_tokens", "default_new_tokens", "max_prompt_tokens", "cache_bytes"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"inference {name} must be at least 1, got {getattr(self, name)}")
        if not 0.001 <= self.purge_poll_s <= 60:
            raise InvalidArgumentError(f"inference purge_poll_s must be 0.001 to 60 seconds, got {self.purge_poll_s}")
        if not 0 <= self.stream_interval_s <= 1:
            raise InvalidArgumentError(
                f"inference stream_interval_s must be 0 to 1 seconds, got {self.stream_interval_s}")
        if self.default_new_tokens > self.max_new_tokens:
            raise InvalidArgumentError(
                f"default_new_tokens {self.default_new_tokens} exceeds max_new_tokens {self.max_new_tokens}")
        if self.max_prompt_tokens + 1 > self.max_seq_len or self.max_prompt_tokens > self.max_step_tokens:
            raise InvalidArgumentError(
                f"max_prompt_tokens {self.max_prompt_tokens} must be below max_seq_len {self.max_seq_len} and at "
                f"most max_step_tokens {self.max_step_tokens}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)
