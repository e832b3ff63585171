"""EK-FAC for the LoRA weights: Kronecker eigenbases with per-sample-corrected eigenvalues, saved as safetensors.

George et al., "Fast Approximate Natural Gradient Descent in a Kronecker-factored Eigenbasis" (arXiv:1806.03884,
eq. 8-9), as used for influence by Grosse et al. (arXiv:2308.03296, sec. 3.2). Per linear weight W (d_out, d_in):
G_W ~ (Q_out x Q_in) diag(Lambda) (Q_out x Q_in)', with Q_in, Q_out the eigenvectors of the token covariances of
inputs and output gradients and Lambda[o, i] = mean_j (Q_out' G_j Q_in)[o, i]^2 over per-sample pseudo-gradients
G_j. Approximated: curvature between different weights (even A and B of one module) is dropped.

Factors are built in one pass (`pseudo_gradients`), then reused for every request; removing samples that were in
the curvature sample subtracts their (recomputed, identically seeded) contributions from Lambda.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from loravault.core import DeserializationError

from .layout import ParamLayout
from .pseudo_gradients import PseudoGradients

__all__ = ["EkfacBlock", "EkfacFactors"]


@dataclass(frozen=True)
class EkfacBlock:
    """One linear weight's eigenbasis and corrected eigenvalues, float32 on the eraser's device."""

    q_in: torch.Tensor  # (d_in, d_in)
    q_out: torch.Tensor  # (d_out, d_out)
    eigenvalues: torch.Tensor  # (d_out, d_in)

    def project(self, gradients: torch.Tensor) -> torch.Tensor:
        """(k, d_out, d_in) -> the same gradients in the eigenbasis."""
        return _project(self.q_out, self.q_in, gradients)


@dataclass(frozen=True)
class EkfacFactors:
    """EK-FAC blocks keyed by live parameter name, averaged over `ids`."""

    blocks: dict[str, EkfacBlock]
    ids: tuple[str, ...]

    @classmethod
    def from_pseudo_gradients(cls, collected: PseudoGradients) -> EkfacFactors:
        """Eigendecompose the covariances (symmetrised, float64) and correct the eigenvalues."""
        blocks = {}
        for name, grads in collected.gradients.items():
            q_in = _eigenvectors(collected.input_covariance[name]).to(grads)
            q_out = _eigenvectors(collected.output_covariance[name]).to(grads)
            blocks[name] = EkfacBlock(q_in, q_out, _project(q_out, q_in, grads).pow(2).mean(0))
        return cls(blocks=blocks, ids=collected.ids)

    def mean_eigenvalue(self) -> float:
        """trace / P of the approximated curvature."""
        total = sum(float(b.eigenvalues.double().sum()) for b in self.blocks.values())
        return total / sum(b.eigenvalues.numel() for b in self.blocks.values())

    def without(self, removed: PseudoGradients) -> EkfacFactors:
        """The factors of the curvature sample without `removed` (which must be part of it): Lambda downdated."""
        keep = tuple(i for i in self.ids if i not in set(removed.ids))
        if not removed.ids:
            return self
        m, k = len(self.ids), len(self.ids) - len(keep)
        blocks = {}
        for name, block in self.blocks.items():
            taken = block.project(removed.gradients[name]).pow(2).sum(0)  # (d_out, d_in)
            eigenvalues = ((block.eigenvalues * m - taken) / max(m - k, 1)).clamp_min(0)
            blocks[name] = EkfacBlock(block.q_in, block.q_out, eigenvalues)
        return EkfacFactors(blocks=blocks, ids=keep)

    def inverse(self, layout: ParamLayout, *, damping: float, power: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> (G_ekfac + lambda I)^-power v on flat vectors (P,); power 1/2 is the symmetric preconditioner's root."""

        def apply(v: torch.Tensor) -> torch.Tensor:
            parts = layout.unflatten(v)
            out = {}
            for name, block in self.blocks.items():
                rotated = block.q_out.T @ parts[name] @ block.q_in  # (d_out, d_in) in the eigenbasis
                out[name] = block.q_out @ (rotated / (block.eigenvalues + damping) ** power) @ block.q_in.T
            return layout.flatten(out)

        return apply

    # storage: safetensors bytes, never pickle

    def to_bytes(self, *, metadata: dict[str, str]) -> bytes:
        tensors = {}
        for name, block in self.blocks.items():
            tensors[f"{name}::q_in"] = block.q_in.detach().to("cpu").contiguous()
            tensors[f"{name}::q_out"] = block.q_out.detach().to("cpu").contiguous()
            tensors[f"{name}::eigenvalues"] = block.eigenvalues.detach().to("cpu").contiguous()
        return st_save(tensors, metadata={**metadata, "ids": json.dumps(list(self.ids))})

    @classmethod
    def from_bytes(cls, data: bytes, *, device: str | torch.device) -> tuple[EkfacFactors, dict[str, str]]:
        """Parse stored factors; raises DeserializationError when the bytes are not what to_bytes wrote."""
        try:
            tensors = st_load(data)
            metadata = _safetensors_metadata(data)
            ids = tuple(json.loads(metadata["ids"]))
            names = sorted({key.rsplit("::", 1)[0] for key in tensors})
            blocks = {
                n: EkfacBlock(tensors[f"{n}::q_in"].to(device), tensors[f"{n}::q_out"].to(device), tensors[f"{n}::eigenvalues"].to(device))
                for n in names
            }
        except (KeyError, ValueError, TypeError) as exc:
            raise DeserializationError(f"EK-FAC factors are not in the expected form: {exc}") from exc
        return cls(blocks=blocks, ids=ids), metadata

    def save(self, path: Path, *, metadata: dict[str, str]) -> None:
        """Write atomically (temporary file in the same folder, then rename): a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".ekfac-", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.to_bytes(metadata=metadata))
        os.replace(temporary, path)


def _project(q_out: torch.Tensor, q_in: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    return q_out.T @ gradients @ q_in  # (d_out, d_out) @ (k, d_out, d_in) @ (d_in, d_in)


def _eigenvectors(covariance: torch.Tensor) -> torch.Tensor:
    symmetric = (covariance.double() + covariance.double().T) / 2
    return torch.linalg.eigh(symmetric).eigenvectors


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors blob (8-byte little-endian header length, then JSON)."""
    length = int.from_bytes(data[:8], "little")
    return dict(json.loads(data[8 : 8 + length]).get("__metadata__", {}))
