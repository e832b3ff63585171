"""Step 6, `merge`: head + delta in float32, on new tensors, checked against the signed result hash.

The inputs are never modified and a non-finite sum is refused. Names and shapes were checked by
check_tensors; the sum is core.merge.merge_float32, the very function the client's core.lora.add_delta calls,
so both compute the same float32 bytes. Its norm (one per tensor proves the sum finite) is kept as the next
erasure's head norm.
The result's canonical float32 safetensors bytes are what the manifest's result_hash covers and what the new
version stores, so the new blob hash equals the signed result hash. The sum is written straight into those bytes
(core.canonical_layout): serializing it afterwards would copy the whole adapter once more.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loravault.core import CanonicalLayout
from loravault.core.adapter_schema import AdapterSchema
from loravault.core.errors import InvalidArgumentError
from loravault.core.merge import merge_float32
from loravault.core.tensors import sha256_hex
from loravault.proto.manifest import ErasureManifest

from .heads import Head

__all__ = ["Merged", "merge"]


@dataclass(frozen=True)
class Merged:
    tensors: dict[str, torch.Tensor]  # float32 views into `data`
    data: memoryview  # canonical float32 safetensors bytes: the new version's blob
    sha256: str  # = manifest.result_hash
    norm: float  # Frobenius norm over all tensors

    def as_head(self) -> Head:
        return Head(self.tensors, self.norm)


def merge(
    manifest: ErasureManifest, *, schema: AdapterSchema, head: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]
) -> Merged:
    """Raises InvalidArgumentError when the sum is not finite or does not hash to the signed result hash."""
    data, tensors = CanonicalLayout.of((spec.name, spec.shape) for spec in schema.tensors).allocate()
    _, norm = merge_float32(head, delta, names=[spec.name for spec in schema.tensors], out=tensors,
                            what=f"{manifest.label}: head + delta")
    digest = sha256_hex(data)
    if digest != manifest.result_hash:
        raise InvalidArgumentError(
            f"{manifest.label}: head + delta hashes to {digest[:12]}…, the manifest signs result "
            f"{manifest.result_hash[:12]}…; merge in float32 and hash canonical_float32 of the result")
    return Merged(tensors=tensors, data=data, sha256=digest, norm=norm)
