"""The eraser's configuration: one frozen dataclass per stage, each validating itself when built.

    >>> EraserConfig(method="cg", damping=1e-3).damping
    0.001
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from loravault.core import InvalidArgumentError

__all__ = [
    "CalibrationConfig",
    "CgConfig",
    "CurvatureConfig",
    "EraserConfig",
    "LissaConfig",
    "LlmEraserConfig",
    "METHODS",
    "SpectralConfig",
    "STEPS",
]

Method = Literal["spectral", "cg", "lissa", "ekfac", "datainf", "dense", "llmeraser"]
Step = Literal["auto", "path", "calibrated", "influence"]
CurvatureKind = Literal["gauss_newton", "hessian"]
METHODS: tuple[str, ...] = ("spectral", "cg", "lissa", "ekfac", "datainf", "dense", "llmeraser")
STEPS: tuple[str, ...] = ("auto", "path", "calibrated", "influence")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class CurvatureConfig:
    """Which curvature, over which fixed sample of the training data."""

    # the sample
    sample_size: int = 64  # training samples the curvature is averaged over (fewer when the set is smaller)
    seed: int = 0  # seeds the sample and the labels drawn for EK-FAC and DataInf pseudo-gradients
    batch_size: int = 8  # samples per forward pass in every curvature product
    # memory for kept graphs: each batch's forward is then paid once per request, not once per product (about
    # 3x faster products; ~0.4 GiB per batch of 8 facts on SmolLM2-135M); 0 recomputes the forward every product
    graph_budget_mib: int = 4096
    # the operator
    kind: CurvatureKind = "gauss_newton"  # gauss_newton is positive semi-definite; hessian is exact (eager attention)

    def __post_init__(self) -> None:
        _positive_int("curvature sample_size", self.sample_size)
        _positive_int("curvature batch_size", self.batch_size)
        if not isinstance(self.graph_budget_mib, int) or isinstance(self.graph_budget_mib, bool) or self.graph_budget_mib < 0:
            raise InvalidArgumentError(f"curvature graph_budget_mib must be an integer >= 0, got {self.graph_budget_mib!r}")
        if self.kind not in ("gauss_newton", "hessian"):
            raise InvalidArgumentError(f"curvature kind {self.kind!r} is not gauss_newton or hessian")


@dataclass(frozen=True)
class CgConfig:
    """Conjugate gradient: stops when the true ||b - Ax|| / ||b|| <= tolerance (converged) or after max_iterations."""

    tolerance: float = 1e-3  # relative residual to stop at
    max_iterations: int = 50  # each iteration is one curvature product
    # EK-FAC (factors built once per adapter version) as preconditioner; off by default: on every model measured
    # (README, "Eraser") it took more products than plain CG, as its Kronecker eigenbasis and its block diagonal
    # (no curvature between A and B of one LoRA module) fit the LoRA Gauss-Newton matrix worse than the identity
    precondition: bool = False
    # exact products over this many samples of the retained curvature sample (seeded; None: all of it), each costing
    # its share of a product: on SmolLM2 (two cores) a path step over 16 took 16.7 s against retraining's 495 s, and
    # 64 did no better at 3-4x the time (README, "The CG path")
    sample_size: int | None = None
    # the path step (its iterates as the regularization path) takes the last iterate before the first whose held-out
    # retained loss rises more than this many nats: on SmolLM2's memorized facts a rise of 0.01-0.02 already cost a retained fact,
    # where retraining itself raised it 0.004; tighter than the calibrated step's 0.1
    path_max_retain_loss_increase: float = 0.015

    def __post_init__(self) -> None:
        _positive("cg tolerance", self.tolerance)
        _positive_int("cg max_iterations", self.max_iterations)
        if self.sample_size is not None:
            _positive_int("cg sample_size", self.sample_size)
        _positive("cg path_max_retain_loss_increase", self.path_max_retain_loss_increase)


@dataclass(frozen=True)
class LissaConfig:
    """LiSSA (Agarwal et al., arXiv:1602.03943): x <- b + (I - A/scale) x, on mini-batch curvature products."""

    depth: int = 200  # recursion steps, each one mini-batch product
    scale: float | None = None  # must exceed the largest eigenvalue of A; None: 2 x a power-iteration estimate
    power_iterations: int = 10  # products spent estimating the largest eigenvalue when scale is None

    def __post_init__(self) -> None:
        _positive_int("lissa depth", self.depth)
        _positive_int("lissa power_iterations", self.power_iterations)
        if self.scale is not None:
            _positive("lissa scale", self.scale)


@dataclass(frozen=True)
class LlmEraserConfig:
    """The released LLMEraser procedure (arXiv:2412.00383, code: attack_demo.py): Adam on 1/2 x'Ax - b'x."""

    steps: int = 20  # x_iter
    learning_rate: float = 1e-5  # x_lr
    initial_value: float = 1e-6  # x_init: every coordinate of x starts here
    weight_decay: float = 1e-5  # x_adjust
    seed: int = 0  # order of the single-sample products

    def __post_init__(self) -> None:
        _positive_int("llmeraser steps", self.steps)
        _positive("llmeraser learning_rate", self.learning_rate)
        if not math.isfinite(self.initial_value) or self.weight_decay < 0:
            raise InvalidArgumentError("llmeraser initial_value must be finite and weight_decay >= 0")


@dataclass(frozen=True)
class SpectralConfig:
    """The exact curvature's Lanczos eigenbasis (built once per adapter version) and the path a request chooses on."""

    # the basis
    rank: int = 24  # Lanczos steps over the curvature sample, each one exact product (kept graphs)
    seed: int = 0  # seeds the Lanczos start vector
    # where Lanczos starts: "random" (a seeded Gaussian), or "gradients" (the sum of the curvature sample's per-sample
    # gradients, each of unit length, so that every sample's gradient direction is in the Krylov space)
    # NOTE: "gradients" is unmeasured on a real model: on SmolLM2 its Lanczos products ran about 5x slower than from a
    # random start (35 s against 7 s at the same load; subnormal floats in the products, likely)
    start: Literal["random", "gradients"] = "random"
    # Lanczos on S G S with S = (G_ekfac + lambda I)^-1/2 (EK-FAC at the automatic damping), the operator EK-FAC-
    # preconditioned CG works on: the path is then x(delta) = S (S G S + delta)^-1 S b, EK-FAC's direction outside
    # the basis instead of b's
    precondition: bool = False
    # the path: path_points dampings from path_above x the largest Ritz value down to path_floor x it (Lanczos also
    # converges to the bottom of the spectrum, near 0, so the smallest Ritz value is no floor)
    path_points: int = 48
    path_above: float = 4.0
    path_floor: float = 1e-4
    # one exact product over the retained sample measures the chosen point's true residual for the report (and the
    # signed manifest); off, the report's residual is nan and a request costs no curvature product at all
    measure_residual: bool = True

    def __post_init__(self) -> None:
        _positive_int("spectral rank", self.rank)
        _positive_int("spectral path_points", self.path_points)
        _positive("spectral path_above", self.path_above)
        _positive("spectral path_floor", self.path_floor)
        if self.start not in ("random", "gradients"):
            raise InvalidArgumentError(f"spectral start {self.start!r} is not random or gradients")
        if self.path_floor >= self.path_above:
            raise InvalidArgumentError(f"spectral path_floor {self.path_floor} must lie below path_above {self.path_above}")


@dataclass(frozen=True)
class CalibrationConfig:
    """The calibrated step: its length is set so the forget loss reaches the never-trained reference loss."""

    # search
    max_scale: float = 1e4  # largest multiple of the influence direction tried
    bisection_steps: int = 16  # most narrowing evaluations once the target is bracketed (within 10x)
    loss_tolerance: float = 0.02  # nats above the target at which the search stops
    # guard
    max_retain_loss_increase: float = 0.1  # nats of mean token NLL the held-out retained loss may rise (path rule too)
    guard_size: int = 16  # held-out retained samples the guard measures

    def __post_init__(self) -> None:
        _positive("calibration max_scale", self.max_scale)
        _positive_int("calibration bisection_steps", self.bisection_steps)
        _positive("calibration loss_tolerance", self.loss_tolerance)
        _positive("calibration max_retain_loss_increase", self.max_retain_loss_increase)
        _positive_int("calibration guard_size", self.guard_size)


@dataclass(frozen=True)
class EraserConfig:
    """Top level: solver, step, damping, device; the per-stage configs ride along."""

    # what to compute
    # ekfac: the factors are built once per adapter version, so a request pays only for its own gradients and
    # the step's loss evaluations (seconds on SmolLM2); cg costs one curvature product over the sample per
    # iteration (on SmolLM2, two cores, 64 samples: ~15 s for the first, which keeps the graphs, then ~4 s each)
    # for a tighter solve
    method: Method = "ekfac"
    # auto: path for spectral; else calibrated when the request forgets samples and a reference set exists
    step: Step = "auto"
    # lambda in (G + lambda I), the same for every method; None: damping_factor x the mean eigenvalue of the
    # retained curvature sample's Gauss-Newton matrix, estimated from its pseudo-gradients (damping.py)
    damping: float | None = None
    damping_factor: float = 0.1  # used when damping is None
    # where and how
    device: str = "cpu"  # every tensor the eraser makes lives here
    max_length: int = 128  # token budget per rendered sample, as in training
    gradient_chunk: int = 8  # samples per vmapped per-sample-gradient call
    # stages
    curvature: CurvatureConfig = field(default_factory=CurvatureConfig)
    cg: CgConfig = field(default_factory=CgConfig)
    lissa: LissaConfig = field(default_factory=LissaConfig)
    llmeraser: LlmEraserConfig = field(default_factory=LlmEraserConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidArgumentError(f"eraser method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.step not in STEPS:
            raise InvalidArgumentError(f"eraser step {self.step!r} is not one of {', '.join(STEPS)}")
        if self.damping is not None and not (math.isfinite(self.damping) and self.damping >= 0):
            raise InvalidArgumentError(f"damping must be a finite number >= 0, got {self.damping!r}")
        _positive("damping_factor", self.damping_factor)
        _positive_int("max_length", self.max_length)
        _positive_int("gradient_chunk", self.gradient_chunk)
