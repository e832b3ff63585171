"""The top-level eraser: builds curvature once per adapter version and answers many erasure requests.

Cost model (DESIGN.md, "Eraser"): an exact curvature product over the whole training set costs about as much
as retraining, so curvature is subsampled (a fixed, seeded curvature sample) and amortized (EK-FAC factors
built once, cached on disk by adapter hash). A request then pays for its own per-sample gradients, the EK-FAC
solve (the default) or a few curvature products on the sample (CG), and the loss evaluations of its step.

The spectral method (method="spectral", step "path") builds a Lanczos eigenbasis of the curvature sample's exact
Gauss-Newton matrix once per adapter version (spectral.py); a request then has the whole damped regularization
path for the price of one projection, and takes its strongest point within the held-out guard (path.py).
CG's path step (method="cg", step "path") takes EK-FAC-preconditioned CG's iterates as the path instead, one exact
product over a small retained subset each (`cg.sample_size`), and stops at the first iterate past its guard.

The EK-FAC erasure takes its direction from the curvature of the retained samples only,
(G_retained + lambda I)^-1 b, and its length from `calibrate_step` when the request forgets samples and a
never-trained reference set was given; otherwise it takes the plain influence step (LLMEraser, scale 1).

    >>> eraser = Eraser.for_peft_model(model, tokenizer, train=train, reference=reference)  # doctest: +SKIP
    >>> result = eraser.erase(ErasureRequest.of(removals=[train[3]]))  # doctest: +SKIP
    >>> apply_delta(model, result.delta)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from loravault.core import InvalidArgumentError, Sample, canonical_float32, sha256_hex

from .cache import EkfacCache
from .calibrate import CalibrationReport, calibrate_step
from .config import EraserConfig
from .curvature import CurvatureOperator, curvature_sample
from .damping import auto_damping
from .delta import ErasureReport, ErasureResult, peak_memory_bytes
from .ekfac import EkfacFactors
from .gradients import per_sample_gradients, request_gradients
from .objective import Objective, TokenBatch, lora_objective
from .path import PathReport, choose_on_path, walk_path
from .pseudo_gradients import PseudoGradients, collect_pseudo_gradients
from .requests import ErasureRequest
from .solve import SolveInputs, cg_iterates, solve
from .solvers import SolveReport, relative_residual
from .spectral import SpectralBasis, lanczos, path_dampings

__all__ = ["Eraser", "erase"]

logger = logging.getLogger(__name__)

# methods that take several products on each batch of the curvature sample, for which keeping each batch's graph
# pays (the others use the full operator once, for the residual, or single samples once each)
REPEATED_PRODUCT_METHODS = ("cg", "lissa")
PATH_METHODS = ("spectral", "cg")  # methods with a regularization path: a solve per damping, or CG's iterates


class Eraser:
    """Erasure for one adapter version trained on `train`; curvature is built lazily and reused.

    `reference`: never-trained samples of the same kind as the training data, for the calibrated step.
    `cache_dir`: where EK-FAC factors are kept between processes (None: in memory only).
    `curvature_builds` counts the passes that built EK-FAC factors (not those loaded from the cache or carried
    over by `advance`), so a caller can see that its curvature was reused.
    """

    def __init__(
        self,
        objective: Objective,
        *,
        train: Sequence[Sample],
        reference: Sequence[Sample] = (),
        config: EraserConfig = EraserConfig(),
        cache_dir: Path | None = None,
        progress: bool = True,
    ) -> None:
        ids = [s.id for s in train]
        if not train or len(set(ids)) != len(ids):
            raise InvalidArgumentError(f"training set must be non-empty with unique ids ({len(ids)} samples, {len(set(ids))} ids)")
        self.objective, self.config, self.progress = objective, config, progress
        self.train = {s.id: s for s in train}
        self.reference = list(reference)
        self.theta = objective.theta()
        self.curvature_samples = curvature_sample(train, size=config.curvature.sample_size, seed=config.curvature.seed)
        self.cache = EkfacCache(cache_dir)
        self.curvature_build_seconds: float | None = None  # set when factors are built (not when loaded)
        self.curvature_builds = 0
        self._factors: EkfacFactors | None = None
        self._basis: SpectralBasis | None = None
        self._basis_samples = 0  # samples the basis's curvature is a mean over
        self._root: Callable[[torch.Tensor], torch.Tensor] | None = None  # S of the preconditioned basis
        self.spectral_build_seconds: float | None = None  # set when the Lanczos basis is built
        self._pseudo: PseudoGradients | None = None
        self._unchanged_losses: dict[Sample, float] = {}  # per-sample loss under the adapter as it is

    @classmethod
    def for_peft_model(
        cls,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        train: Sequence[Sample],
        reference: Sequence[Sample] = (),
        config: EraserConfig = EraserConfig(),
        cache_dir: Path | None = None,
        progress: bool = True,
    ) -> Eraser:
        """An eraser for a peft LoRA model (put in eval mode), rendering with core's one template."""
        objective = lora_objective(model, tokenizer, max_length=config.max_length, device=config.device)
        return cls(objective, train=train, reference=reference, config=config, cache_dir=cache_dir, progress=progress)

    def adapter_hash(self) -> str:
        """SHA-256 of the adapter's canonical float32 bytes: the key of its curvature cache."""
        return sha256_hex(canonical_float32({k: v.to("cpu") for k, v in self.objective.public(self.theta).items()}))

    def build_curvature(self) -> EkfacFactors:
        """EK-FAC factors over the curvature sample: from memory, from the cache, or built in one pass."""
        if self._factors is not None:
            return self._factors
        ids = [s.id for s in self.curvature_samples]
        key, setup = self.adapter_hash(), EkfacCache.setup_digest(self.config.curvature, ids)
        self._factors = self.cache.load(key, setup, device=self.objective.device)
        if self._factors is None:
            started = time.perf_counter()
            self._pseudo = self._pseudo_gradients(self.curvature_samples)
            self._factors = EkfacFactors.from_pseudo_gradients(self._pseudo)
            self.curvature_build_seconds = time.perf_counter() - started
            self.curvature_builds += 1
            logger.info("EK-FAC factors built over %d samples in %.2f s", len(ids), self.curvature_build_seconds)
            self.cache.store(self._factors, key, setup)
        return self._factors

    def build_spectral_basis(self) -> SpectralBasis:
        """The Lanczos eigenbasis of the curvature sample's exact Gauss-Newton matrix, built once per version.

        Costs `config.spectral.rank` exact products over the curvature sample (kept graphs, freed after).
        Raises FailedPreconditionError when the model cannot take exact products (sdpa attention).
        """
        if self._basis is None:
            started = time.perf_counter()
            curvature, spectral = self.config.curvature, self.config.spectral
            operator = CurvatureOperator(
                self.objective, self.theta, self.curvature_samples, kind=curvature.kind, batch_size=curvature.batch_size,
                graph_budget_bytes=curvature.graph_budget_mib * 2**20,
            )
            root = self._preconditioner_root()
            start = root(self._lanczos_start())
            self._basis = lanczos(lambda v: root(operator(root(v))), start, steps=spectral.rank, progress=self.progress)
            self._basis_samples = len(self.curvature_samples)
            del operator  # its kept graphs (GiBs)
            self.spectral_build_seconds = time.perf_counter() - started
            logger.info("Lanczos basis of rank %d built over %d samples in %.2f s (Ritz values %.3g .. %.3g)",
                        self._basis.rank, len(self.curvature_samples), self.spectral_build_seconds,
                        float(self._basis.values[0]), float(self._basis.values[-1]))
        return self._basis

    def _preconditioner_root(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """S = (G_ekfac + lambda I)^-1/2 over the whole curvature sample when config.spectral.precondition, else I;
        fixed once per adapter version, as the basis is of S G S."""
        if not self.config.spectral.precondition:
            return lambda v: v
        if self._root is None:
            factors = self.build_curvature()
            damping = self.config.damping if self.config.damping is not None else auto_damping(
                factors.mean_eigenvalue(), factor=self.config.damping_factor)
            self._root = factors.inverse(self.objective.layout, damping=damping, power=0.5)
        return self._root

    def _lanczos_start(self) -> torch.Tensor:
        """Lanczos's start vector (P,): seeded Gaussian, or the sum of unit per-sample gradients of the sample."""
        spectral = self.config.spectral
        if spectral.start == "random":
            generator = torch.Generator().manual_seed(spectral.seed)
            return torch.randn(self.theta.numel(), generator=generator).to(self.theta.device)
        rows = per_sample_gradients(self.objective, self.theta, self.curvature_samples, chunk=self.config.gradient_chunk,
                                    progress=self.progress)  # (m, P)
        return (rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-30)).sum(0)

    def prepare(self) -> None:
        """Do the one-off work of this adapter version now: EK-FAC factors, and the losses every calibrated
        request compares against (the reference set's, and the default guard sample's under the adapter as it is).

        Why: a request otherwise pays for these on its first call (about 5 s on SmolLM2 on two cores); a tenant
        that answers several requests, or times one, does them once up front.
        """
        if self.config.method == "spectral":
            self.build_spectral_basis()
        if self._needs_factors(self.config.method, self.config.step):
            self.build_curvature()
        if self.reference:
            self._unchanged_loss(self.reference)
            self._unchanged_loss(self._guard_samples(touched=frozenset()))

    def erase(self, request: ErasureRequest, *, method: str | None = None, step: str | None = None) -> ErasureResult:
        """The delta that applies `request` to the adapter, and its report.

        `method` and `step` override the config's for this request only; they go through the config's own
        validation, so a misspelt one is refused before any work.
        Raises InvalidArgumentError for an unknown method or step, or a request that does not match the training
        set, and FailedPreconditionError when the calibrated step finds no length that keeps retained data within
        bound, or the path step's most regularized point already breaks the guard.
        """
        overrides: dict[str, Any] = {name: value for name, value in (("method", method), ("step", step)) if value is not None}
        config = replace(self.config, **overrides)
        method, step = config.method, self._choose_step(request, config.step, config.method)
        self._check_request(request)
        device = self.objective.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        size_after = request.size_after(len(self.train))
        gradients = request_gradients(self.objective, self.theta, request, chunk=self.config.gradient_chunk, progress=self.progress)
        b = gradients.vector(size_after=size_after)
        retained = self._retained_sample(request)
        if not retained:
            raise InvalidArgumentError("the request touches every sample of the curvature sample: nothing retained")
        x, solved, curvature, path, residual_seconds = self._direction(request, b, method=method, step=step,
                                                                      retained=retained, config=config)
        damping, scale, calibration = solved.damping, 1.0, None
        if step == "calibrated":
            calibration = self._calibrate(request, x, slope=gradients.forget_slope(x))
            scale = calibration.scale
        delta = {name: t.to("cpu", torch.float32) for name, t in self.objective.public(scale * x).items()}
        wall = time.perf_counter() - started
        memory, scope = peak_memory_bytes(device)
        report = ErasureReport(
            method=method, step=step, curvature=curvature, damping=damping, iterations=solved.iterations,
            residual=solved.residual, converged=solved.converged, scale=scale, wall_seconds=wall,
            peak_memory_bytes=memory, peak_memory_scope=scope, residual_seconds=residual_seconds,
            size_before=len(self.train), size_after=size_after,
            kinds=request.kinds(), calibration=calibration, path=path,
        )
        logger.info("erasure %s/%s: damping %.3g, %d iterations, residual %.2e, scale %.3g, %.2f s",
                    method, step, damping, solved.iterations, solved.residual, scale, wall)
        return ErasureResult(delta=delta, report=report)

    def advance(self, request: ErasureRequest, adapter: Mapping[str, torch.Tensor]) -> None:
        """Move this eraser to the adapter version that applying `request` made, keeping its curvature.

        `adapter`: the new version's tensors under the adapter's names (for the vault, the merged head whose
        float32 hash the manifest signed). The training set becomes the request's new one; the EK-FAC factors
        and pseudo-gradients already in memory are carried over with the touched samples taken out (the
        downdate `erase` applies anyway), not rebuilt: an approximation, as they stay measured at the old
        adapter, which one erasure moves little. Carried factors are never written to the cache, whose files
        hold only factors built at the adapter they are keyed by.
        Raises InvalidArgumentError when `adapter` names other tensors than this eraser's, or `request` does not
        match the training set; the eraser is unchanged then.
        """
        if set(adapter) != set(self.objective.names):
            difference = sorted(set(adapter) ^ set(self.objective.names))
            raise InvalidArgumentError(f"advance: the new adapter names other tensors (first difference: {difference[0]})")
        self._check_request(request)
        live = {name: adapter[public].to(self.objective.device, torch.float32)
                for public, name in zip(self.objective.names, self.objective.live_names)}
        theta = self.objective.layout.flatten(live)  # (P,)
        if self._factors is not None:
            self._factors = self._retained_factors(request)
        if self._pseudo is not None:
            self._pseudo = self._pseudo.rows([i for i in self._pseudo.ids if i not in request.touched_ids])
        self.curvature_samples = self._retained_sample(request)
        for change in request.changes:
            self.train.pop(change.id, None)
            if change.new is not None:
                self.train[change.id] = change.new
        self.theta, self._unchanged_losses = theta, {}

    def mean_loss(self, samples: Sequence[Sample]) -> float:
        """Mean training loss of `samples` under the eraser's adapter (each sample's computed once per version)."""
        return self._unchanged_loss(samples)

    # steps of erase(), in order

    def _direction(
        self, request: ErasureRequest, b: torch.Tensor, *, method: str, step: str, retained: list[Sample], config: EraserConfig
    ) -> tuple[torch.Tensor, SolveReport, str, PathReport | None, float]:
        """The step before any calibration: (x, solve report, curvature name, path report, residual seconds).

        The path step chooses its damping on the spectral basis's path; every other step solves at the damping
        of `_damping`.
        """
        if step == "path" and method == "cg":
            x, solved, path = self._cg_path_step(request, b, retained=retained)
            return x, solved, self.config.curvature.kind + ("+ekfac" if self.config.cg.precondition else ""), path, 0.0
        if step == "path":
            x, path = self._path_step(request, b, retained=retained)
            checked = time.perf_counter()
            solved = self._path_residual(b, x, damping=path.damping, retained=retained)
            return x, solved, self.config.curvature.kind + "+lanczos", path, time.perf_counter() - checked
        factors = self._retained_factors(request) if self._needs_factors(method, step) else None
        damping = self._damping(factors)
        inputs = self._solve_inputs(request, method, retained=retained, factors=factors)
        x, solved = solve(method, inputs, b, damping=damping, config=config, progress=self.progress)
        curvature = self.config.curvature.kind + ("+ekfac" if inputs.factors is not None else "")
        curvature += "+lanczos" if inputs.basis is not None else ""
        del inputs  # its operator's kept graphs (GiBs): freed now, and not held by a refusal's traceback later
        return x, solved, curvature, None, 0.0

    def _choose_step(self, request: ErasureRequest, step: str, method: str) -> str:
        if step == "calibrated" and not (self.reference and request.old_samples):
            raise InvalidArgumentError("the calibrated step needs a reference set and a request that forgets samples")
        if step == "path" and method not in PATH_METHODS:
            raise InvalidArgumentError(
                f"the path step needs a method with a regularization path (spectral: a solve per damping; cg: its "
                f"iterates), not {method}"
            )
        if step == "auto" and method == "spectral":
            return "path"
        if step == "auto":
            return "calibrated" if self.reference and request.old_samples else "influence"
        return step

    def _check_request(self, request: ErasureRequest) -> None:
        for change in request.changes:
            known = self.train.get(change.id)
            if change.old is not None and known is None:
                raise InvalidArgumentError(f"sample {change.id!r} is not in the training set this adapter was trained on")
            if change.old is not None and known != change.old:
                raise InvalidArgumentError(f"sample {change.id!r}: the old version differs from the training set's")
            if change.old is None and known is not None:
                raise InvalidArgumentError(f"sample {change.id!r} is already in the training set: add it under a new id")

    def _needs_factors(self, method: str, step: str) -> bool:
        """EK-FAC factors serve the automatic damping, and the methods that solve with them (the path step takes
        its damping from its path, so the spectral method needs them only for a fixed-damping step)."""
        if method == "spectral" and step in ("auto", "path"):
            return False
        return self.config.damping is None or self._solves_with_factors(method)

    def _solves_with_factors(self, method: str) -> bool:
        return method == "ekfac" or (method == "cg" and self.config.cg.precondition)

    def _damping(self, factors: EkfacFactors | None) -> float:
        """The damping every method uses: as set, else damping.py's one rule on the retained EK-FAC factors."""
        if self.config.damping is not None:
            return self.config.damping
        assert factors is not None  # _needs_factors: built whenever damping is unset
        return auto_damping(factors.mean_eigenvalue(), factor=self.config.damping_factor)

    def _solve_inputs(
        self, request: ErasureRequest, method: str, *, retained: list[Sample], factors: EkfacFactors | None
    ) -> SolveInputs:
        """The retained curvature sample's operator and, where the method uses them, EK-FAC factors or gradients."""
        operator = None
        if self.objective.supports_vmap:
            curvature = self.config.curvature
            operator = CurvatureOperator(
                self.objective, self.theta, self._cg_samples(retained) if method == "cg" else retained,
                kind=curvature.kind, batch_size=curvature.batch_size,
                graph_budget_bytes=curvature.graph_budget_mib * 2**20 if method in REPEATED_PRODUCT_METHODS else 0,
            )
        factors = factors if self._solves_with_factors(method) else None  # else built for the damping only
        gradients = None
        if method == "datainf":
            gradients = self._retained_gradients(request)
        single = sorted(retained, key=lambda s: s.id)
        random.Random(self.config.llmeraser.seed).shuffle(single)
        if method == "spectral" and self.config.spectral.precondition:
            raise InvalidArgumentError("a preconditioned spectral basis answers the path step only: use step='path'")
        basis = self._retained_basis(retained) if method == "spectral" else None
        return SolveInputs(self.objective, self.theta, operator, factors, gradients, single, basis)

    def _cg_samples(self, retained: Sequence[Sample]) -> list[Sample]:
        """The samples CG's exact products average over: a seeded subset of the retained curvature sample
        (`cg.sample_size`), or all of it. The preconditioner and the damping keep the whole sample's EK-FAC."""
        size = self.config.cg.sample_size
        if size is None or size >= len(retained):
            return list(retained)
        return sorted(random.Random(self.config.curvature.seed).sample(list(retained), size), key=lambda s: s.id)

    def _cg_path_step(
        self, request: ErasureRequest, b: torch.Tensor, *, retained: list[Sample]
    ) -> tuple[torch.Tensor, SolveReport, PathReport]:
        """The last PCG iterate before the first whose guard loss rises past `cg.path_max_retain_loss_increase`
        (path.walk_path): one exact product and one guard evaluation per iterate, at most `cg.max_iterations`."""
        factors = self._retained_factors(request) if self._needs_factors("cg", "path") else None
        damping = self._damping(factors)
        inputs = self._solve_inputs(request, "cg", retained=retained, factors=factors)
        iterates = islice(cg_iterates(inputs, b, damping=damping), self.config.cg.max_iterations)
        guard_loss, before = self._guard_along_path(request)
        x, report = walk_path(iterates, guard_loss, before=before, max_increase=self.config.cg.path_max_retain_loss_increase,
                              damping=damping)
        del inputs  # its operator's kept graphs
        solved = SolveReport("cg", damping, report.evaluations, math.nan, False)
        return x, solved, self._with_forget_loss(request, x, report)

    def _guard_along_path(self, request: ErasureRequest) -> tuple[Callable[[torch.Tensor], float], float]:
        """x -> the guard's mean loss at theta + x (its batch rendered once), and the guard's loss as it is."""
        guard_samples = self._guard_samples(touched=request.touched_ids)
        guard = self.objective.render(guard_samples).to(self.objective.device)

        def guard_loss(x: torch.Tensor) -> float:
            with torch.no_grad():
                return float(self.objective.per_sample_loss(self.theta + x, guard).mean())

        return guard_loss, self._unchanged_loss(guard_samples)

    def _with_forget_loss(self, request: ErasureRequest, x: torch.Tensor, report: PathReport) -> PathReport:
        """The report with the forgotten samples' mean loss at the chosen point (one forward), when it forgets any."""
        if not request.old_samples:
            return report
        with torch.no_grad():
            forget = self.objective.render(request.old_samples).to(self.objective.device)
            return replace(report, forget_loss_after=float(self.objective.per_sample_loss(self.theta + x, forget).mean()))

    def _retained_basis(self, retained: Sequence[Sample]) -> SpectralBasis:
        """The basis of the whole curvature sample, rescaled to a mean over the retained samples.

        Approximated: the touched samples' own curvature is left in the sum (memorized samples' curvature nearly
        vanishes, as their softmax is saturated); only the mean's divisor changes, m -> m'.
        """
        basis = self.build_spectral_basis()
        return basis.scaled(self._basis_samples / len(retained))

    def _path_residual(self, b: torch.Tensor, x: torch.Tensor, *, damping: float, retained: Sequence[Sample]) -> SolveReport:
        """The chosen point's true relative residual against the exact retained curvature: one product, when asked
        (config.spectral.measure_residual) and the model can take it; else nan."""
        if not (self.config.spectral.measure_residual and self.objective.supports_vmap):
            return SolveReport("spectral", damping, 0, float("nan"), False)
        curvature = self.config.curvature
        operator = CurvatureOperator(self.objective, self.theta, retained, kind=curvature.kind, batch_size=curvature.batch_size)
        residual = relative_residual(operator, b, x, damping=damping)
        return SolveReport("spectral", damping, 0, residual, residual <= 1e-2)

    def _path_step(self, request: ErasureRequest, b: torch.Tensor, *, retained: Sequence[Sample]) -> tuple[torch.Tensor, PathReport]:
        """The strongest point of the spectral regularization path within the guard (path.py)."""
        spectral = self.config.spectral
        basis = self._retained_basis(retained)
        dampings = path_dampings(basis, points=spectral.path_points, above=spectral.path_above, floor=spectral.path_floor)
        root = self._preconditioner_root()
        candidates = [root(y) for y in basis.solve_many(root(b), dampings)]  # (P,) each: x = S y
        guard_loss, before = self._guard_along_path(request)
        report = choose_on_path(dampings, lambda index: guard_loss(candidates[index]), before=before,
                                max_increase=self.config.calibration.max_retain_loss_increase)
        return candidates[report.index], self._with_forget_loss(request, candidates[report.index], report)

    def _retained_sample(self, request: ErasureRequest) -> list[Sample]:
        """The curvature sample as a uniform sample of the *new* training set, whose curvature the step needs.

        Touched samples leave; the new version of an edited sample that was in the sample takes its place; an
        addition joins only when the sample covers the whole training set (then the step is an exact Newton step).
        """
        sampled = {s.id for s in self.curvature_samples}
        covers_all = len(sampled) == len(self.train)
        joining = [c.new for c in request.changes if c.new is not None and (c.id in sampled or (c.old is None and covers_all))]
        return [s for s in self.curvature_samples if s.id not in request.touched_ids] + joining

    def _retained_factors(self, request: ErasureRequest) -> EkfacFactors:
        factors = self.build_curvature()
        removed = [s for s in self.curvature_samples if s.id in request.touched_ids and s.id in factors.ids]
        if not removed:
            return factors
        if self._pseudo is not None:  # built in this process: the removed rows are already collected
            return factors.without(self._pseudo.rows([s.id for s in removed]))
        return factors.without(self._pseudo_gradients(removed))

    def _retained_gradients(self, request: ErasureRequest) -> torch.Tensor:
        if self._pseudo is None:
            self._pseudo = self._pseudo_gradients(self.curvature_samples)
        flat = self._pseudo.flat(self.objective)  # (m, P)
        keep = [i for i, sample_id in enumerate(self._pseudo.ids) if sample_id not in request.touched_ids]
        return flat[keep]

    def _pseudo_gradients(self, samples: Sequence[Sample]) -> PseudoGradients:
        curvature = self.config.curvature
        return collect_pseudo_gradients(
            self.objective, self.theta, samples, seed=curvature.seed, batch_size=curvature.batch_size, progress=self.progress
        )

    def _calibrate(self, request: ErasureRequest, direction: torch.Tensor, *, slope: float | None) -> CalibrationReport:
        """The step length along `direction`; `slope` (of the forget samples' mean loss along it) picks the start."""
        forget_samples, guard_samples = request.old_samples, self._guard_samples(touched=request.touched_ids)
        forget = self.objective.render(forget_samples).to(self.objective.device)
        guard = self.objective.render(guard_samples).to(self.objective.device)

        def loss(batch: TokenBatch, samples: Sequence[Sample], scale: float) -> float:
            if scale == 0.0:
                return self._unchanged_loss(samples)
            with torch.no_grad():
                return float(self.objective.per_sample_loss(self.theta + scale * direction, batch).mean())

        return calibrate_step(
            lambda s: loss(forget, forget_samples, s), lambda s: loss(guard, guard_samples, s),
            target=self._unchanged_loss(self.reference), config=self.config.calibration,
            slope=slope,
        )

    def _unchanged_loss(self, samples: Sequence[Sample]) -> float:
        """Mean loss of `samples` under the adapter as it is, each sample's loss computed once per eraser.

        Why: the reference loss and the losses at scale 0 are the same for every request on this adapter
        version; on SmolLM2 each forward pass costs most of a second on two cores.
        """
        missing = list(dict.fromkeys(s for s in samples if s not in self._unchanged_losses))
        size = self.config.curvature.batch_size  # logits of a whole reference set at once may not fit
        for chunk in (missing[i : i + size] for i in range(0, len(missing), size)):
            with torch.no_grad():
                losses = self.objective.per_sample_loss(self.theta, self.objective.render(chunk).to(self.objective.device))
            self._unchanged_losses.update(zip(chunk, losses.tolist()))
        return sum(self._unchanged_losses[s] for s in samples) / len(samples)

    def _guard_samples(self, *, touched: frozenset[str]) -> list[Sample]:
        """A seeded held-out sample of retained data, preferring samples outside the curvature sample.

        The whole training set is shuffled before the request's samples are dropped, so every request's guard is
        one list less its own samples (refilled from the same order), whose losses under the unchanged adapter
        are computed once.
        """
        in_curvature = {s.id for s in self.curvature_samples}
        everything = sorted(self.train.values(), key=lambda s: s.id)
        outside = [s for s in everything if s.id not in in_curvature]
        inside = [s for s in everything if s.id in in_curvature]
        rng = random.Random(self.config.curvature.seed)
        rng.shuffle(outside)
        rng.shuffle(inside)
        outside, inside = ([s for s in part if s.id not in touched] for part in (outside, inside))
        return (outside + inside)[: self.config.calibration.guard_size]


def erase(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    request: ErasureRequest,
    *,
    train: Sequence[Sample],
    reference: Sequence[Sample] = (),
    config: EraserConfig = EraserConfig(),
    cache_dir: Path | None = None,
) -> ErasureResult:
    """One-shot erasure of a peft LoRA model; keep an `Eraser` instead to answer several requests cheaply."""
    return Eraser.for_peft_model(model, tokenizer, train=train, reference=reference, config=config, cache_dir=cache_dir).erase(request)
