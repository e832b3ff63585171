"""Influence-function unlearning for LoRA adapters: requests, gradients, curvature, solvers, the adapter delta.

    >>> from loravault.eraser import Eraser, ErasureRequest, apply_delta
    >>> eraser = Eraser.for_peft_model(model, tokenizer, train=train, reference=never_trained)  # doctest: +SKIP
    >>> result = eraser.erase(ErasureRequest.of(removals=[train[0]]))  # doctest: +SKIP
    >>> apply_delta(model, result.delta)  # doctest: +SKIP

Runs on the tenant's machine, CPU or CUDA (device from EraserConfig), never imports grpc.
"""

from .calibrate import CalibrationReport, calibrate_step
from .config import (
    CalibrationConfig,
    CgConfig,
    CurvatureConfig,
    EraserConfig,
    LissaConfig,
    LlmEraserConfig,
    SpectralConfig,
)
from .curvature import CurvatureOperator, curvature_sample
from .damping import auto_damping, hutchinson_mean_eigenvalue
from .datainf import datainf_inverse
from .delta import ErasureReport, ErasureResult, adapter_distance, apply_delta
from .ekfac import EkfacFactors
from .erase import Eraser, erase
from .gradients import RequestGradients, per_sample_gradients, request_gradients, request_vector
from .layout import ParamLayout
from .path import PathReport, choose_on_path, walk_path
from .spectral import SpectralBasis, lanczos, path_dampings
from .objective import DecoderSplit, Objective, TokenBatch, lora_objective, scored_positions, token_losses
from .requests import Change, ErasureRequest
from .solvers import (
    SolveReport,
    approximate_inverse_solve,
    conjugate_gradient,
    dense_matrix,
    dense_solve,
    lissa,
    llmeraser_solve,
    pcg_steps,
)

__all__ = [
    "CalibrationConfig",
    "CalibrationReport",
    "CgConfig",
    "Change",
    "CurvatureConfig",
    "CurvatureOperator",
    "DecoderSplit",
    "EkfacFactors",
    "Eraser",
    "EraserConfig",
    "ErasureReport",
    "ErasureRequest",
    "ErasureResult",
    "LissaConfig",
    "LlmEraserConfig",
    "Objective",
    "ParamLayout",
    "PathReport",
    "SolveReport",
    "SpectralBasis",
    "SpectralConfig",
    "TokenBatch",
    "adapter_distance",
    "apply_delta",
    "approximate_inverse_solve",
    "auto_damping",
    "calibrate_step",
    "choose_on_path",
    "conjugate_gradient",
    "curvature_sample",
    "datainf_inverse",
    "dense_matrix",
    "dense_solve",
    "erase",
    "hutchinson_mean_eigenvalue",
    "lanczos",
    "lissa",
    "llmeraser_solve",
    "lora_objective",
    "path_dampings",
    "pcg_steps",
    "scored_positions",
    "token_losses",
    "per_sample_gradients",
    "RequestGradients",
    "request_gradients",
    "request_vector",
    "walk_path",
]
