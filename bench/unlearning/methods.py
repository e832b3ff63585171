"""The eraser's solvers as benchmark methods: each request answered with the calibrated and the plain step.

Solvers that need exact curvature products (cg, lissa, llmeraser) run on eager attention; the approximate
inverses (ekfac, datainf) run as a tenant would run them in production, on sdpa attention, where the eraser
skips the optional residual check (one more curvature product over the sample, a diagnostic only). Both
erasers serve the same adapter, so the EK-FAC factors are built once and shared through the cache folder; the
one-off cost of an adapter version (`Eraser.prepare`: factors, and the reference and guard losses under the
unchanged adapter) is timed once and reported as the curvature build. CG's path step runs on a third (eager)
eraser with its own CG settings (few exact-product samples, a longer walk), the factors again from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from loravault.core import FailedPreconditionError, Sample
from loravault.eraser import CgConfig, Eraser, EraserConfig, ErasureRequest, ErasureResult

__all__ = ["EXACT_PRODUCT_METHODS", "EraserPair", "MethodOutcome"]

EXACT_PRODUCT_METHODS = ("spectral", "cg", "lissa", "llmeraser")


@dataclass(frozen=True)
class MethodOutcome:
    """One method's answer to one request: a delta (None when refused or applied in place) and its cost."""

    name: str  # e.g. "ekfac/calibrated"
    seconds: float  # wall time of the request
    uses_curvature: bool  # pays for the one-off curvature build (EK-FAC factors, DataInf's gradients)
    delta: dict[str, torch.Tensor] | None = None
    refused: str | None = None  # the refusal message: the adapter stays unchanged
    details: dict[str, Any] = field(default_factory=dict)


class EraserPair:
    """A fast (sdpa) and an exact-product (eager) eraser for one adapter version, sharing EK-FAC factors (and CG's
    path eraser, eager, when `cg_path` sets its CG)."""

    def __init__(
        self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, *, train: Sequence[Sample], reference: Sequence[Sample],
        config: EraserConfig, cache_dir: Path, spectral: bool = False, cg_path: CgConfig | None = None,
    ) -> None:
        self.model = model
        self.erasers: dict[str, Eraser] = {}
        configs = {"sdpa": config, "eager": config} | ({"cg-path": replace(config, cg=cg_path)} if cg_path else {})
        for name, own in configs.items():
            model.set_attn_implementation("sdpa" if name == "sdpa" else "eager")
            self.erasers[name] = Eraser.for_peft_model(
                model, tokenizer, train=train, reference=reference, config=own, cache_dir=cache_dir, progress=False
            )
        started = time.perf_counter()
        self._use("sdpa").prepare()
        self.curvature_build_seconds = time.perf_counter() - started  # the one-off: EK-FAC and reference losses
        self._use("eager").prepare()  # the same work again (factors from the cache): not counted twice
        if cg_path:
            self._use("cg-path").prepare()
        self.spectral_build_seconds: float | None = None  # the spectral method's own one-off: its Lanczos basis
        if spectral:
            self._use("eager").build_spectral_basis()
            self.spectral_build_seconds = self.erasers["eager"].spectral_build_seconds
            self._use("eager")

    def _use(self, name: str) -> Eraser:
        self.model.set_attn_implementation("sdpa" if name == "sdpa" else "eager")
        return self.erasers[name]

    def outcomes(self, request: ErasureRequest, method: str) -> list[MethodOutcome]:
        """The calibrated and the plain (influence, scale 1) step of `method`, and for cg its path step when the pair
        has a CG path eraser; the model ends on eager attention.

        The plain step reuses the calibrated call's direction (delta / scale) when that call succeeded with a
        positive scale: the solve is identical, and its time (the calibrated call's) is an upper bound.
        """
        if method == "spectral":
            return [self._path(self._use("eager"), request, "spectral")]
        path = [self._path(self._use("cg-path"), request, "cg")] if method == "cg" and "cg-path" in self.erasers else []
        eraser = self._use("eager" if method in EXACT_PRODUCT_METHODS else "sdpa")
        try:
            started = time.perf_counter()
            calibrated = eraser.erase(request, method=method, step="calibrated")
            seconds = time.perf_counter() - started
        except FailedPreconditionError as refusal:
            refused = MethodOutcome(f"{method}/calibrated", time.perf_counter() - started, True, refused=str(refusal))
            plain = self._timed(eraser, request, method)
            self._use("eager")
            return [refused, plain, *path]
        scale = calibrated.report.scale
        out = [_outcome(f"{method}/calibrated", calibrated, seconds)]
        if scale > 0:
            plain_delta = {k: v / scale for k, v in calibrated.delta.items()}
            out.append(MethodOutcome(f"{method}/plain", seconds, True, plain_delta, details={**_details(calibrated), "scale": 1.0}))
        else:
            out.append(self._timed(eraser, request, method))
        self._use("eager")
        return out + path

    def _path(self, eraser: Eraser, request: ErasureRequest, method: str) -> MethodOutcome:
        """A method's path step; the spectral method's with its own one-off build in the details (CG's one-off is the
        shared EK-FAC build, its preconditioner)."""
        name, own = f"{method}/path", {"build_seconds": self.spectral_build_seconds} if method == "spectral" else {}
        started = time.perf_counter()
        try:
            result = eraser.erase(request, method=method, step="path")
        except FailedPreconditionError as refusal:
            return MethodOutcome(name, time.perf_counter() - started, True, refused=str(refusal), details=own)
        outcome = _outcome(name, result, time.perf_counter() - started)
        path = result.report.path
        outcome.details.update(own, chosen=f"path point {path.index}", path_index=path.index)
        return outcome

    @staticmethod
    def _timed(eraser: Eraser, request: ErasureRequest, method: str) -> MethodOutcome:
        started = time.perf_counter()
        result = eraser.erase(request, method=method, step="influence")
        return _outcome(f"{method}/plain", result, time.perf_counter() - started)


def _details(result: ErasureResult) -> dict[str, Any]:
    report = result.report
    return {"damping": report.damping, "iterations": report.iterations, "residual": report.residual, "scale": report.scale,
            "peak_memory_bytes": report.peak_memory_bytes, "peak_memory_scope": report.peak_memory_scope,
            "residual_seconds": report.residual_seconds, "path": None if report.path is None else {
                "index": report.path.index, "damping": report.path.damping, "guard_evaluated": report.path.evaluated,
                "guard_bound": report.path.retain_bound, "forget_loss_after": report.path.forget_loss_after}}


def _outcome(name: str, result: ErasureResult, seconds: float) -> MethodOutcome:
    return MethodOutcome(name, seconds, True, result.delta, details=_details(result))
