"""The base model's identity: a SHA-256 over its canonical weights, which every adapter is bound to."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

__all__ = ["weights_fingerprint"]


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """Hash tensors in sorted-name order, each as name, dtype, shape and raw little-endian bytes.

    Tied weights appear under both names, as in `state_dict()`. The result depends on dtype, so the canonical
    fingerprint is taken over the float32 weights the base is loaded in by default.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(b"\0" + str(tensor.dtype).encode())
        digest.update(b"\0" + ",".join(str(d) for d in tensor.shape).encode() + b"\0")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
