"""The benchmark's configuration: frozen dataclasses per stage that validate themselves, and presets per base.

Every knob is set by a rule that needs no retrained model: damping is the eraser's automatic 0.1 x mean
eigenvalue; the calibrated step grows until the forgotten samples' loss reaches the loss of never-trained
reference samples while a held-out retained sample's loss rises at most `max_retain_loss_increase`; gradient
ascent takes the largest step count in `ascent_steps` that keeps that same held-out loss within the same bound.

    >>> preset("tiny", quick=True).base
    'tiny'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from loravault.client.training import TrainingConfig
from loravault.core import InvalidArgumentError
from loravault.eraser import CalibrationConfig, CgConfig, CurvatureConfig, EraserConfig, LissaConfig, SpectralConfig

__all__ = ["BenchConfig", "FactsConfig", "LabelsConfig", "MethodsConfig", "preset"]

SOLVERS = ("spectral", "cg", "lissa", "ekfac", "datainf", "llmeraser")


@dataclass(frozen=True)
class FactsConfig:
    """The memorization task: made-up entities, which share of them is forgotten, and which edits are made."""

    # data
    entities: int = 24  # trained entities
    attributes: int = 4  # facts per entity
    reference_entities: int = 4  # never trained: the calibrated step's target loss
    nonmember_entities: int = 4  # never trained, drawn apart: the membership-inference attack's negatives
    paraphrase_retain: int = 32  # retained facts whose paraphrase is measured (seeded subsample)
    seed: int = 0
    # requests
    fractions: tuple[float, ...] = (0.01,)  # share of entities removed; at least one entity each
    edit_fraction: float = 0.0  # share of facts whose query is edited / answer corrected (0: no edit tasks)
    noise_seeds: tuple[int, ...] = (1, 2)  # extra retraining seeds for the first removal: the noise floor
    # requests of the smallest fraction, each forgetting other entities with a retraining of its own; the headline
    # averages them (how far an erasure lands from one retraining depends on which entity it forgot)
    removal_repeats: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.removal_repeats, int) or self.removal_repeats < 1:
            raise InvalidArgumentError(f"facts: removal_repeats must be a positive integer, got {self.removal_repeats!r}")
        if self.entities < 2 or not 1 <= self.attributes <= 4 or min(self.reference_entities, self.nonmember_entities) < 1:
            raise InvalidArgumentError("facts: need >= 2 entities, 1..4 attributes, >= 1 reference and non-member entity")
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions) or not 0 <= self.edit_fraction < 1:
            raise InvalidArgumentError(f"facts: fractions must be in (0, 1), got {self.fractions}, {self.edit_fraction}")


@dataclass(frozen=True)
class LabelsConfig:
    """The generalization task: a learnable labelling rule with corrupted training labels (0 train: skipped)."""

    train: int = 48
    held_out: int = 48
    corrupted: int = 8  # training labels flipped, then corrected by the request
    seed: int = 0
    training: TrainingConfig = TrainingConfig(rank=8, alpha=16.0, epochs=4, batch_size=8, learning_rate=2e-3, max_length=48)
    solvers: tuple[str, ...] = ("ekfac", "datainf", "cg")

    def __post_init__(self) -> None:
        if self.train and not 0 < self.corrupted < self.train:
            raise InvalidArgumentError(f"labels: need 0 < corrupted < train, got {self.corrupted}, {self.train}")
        if any(s not in SOLVERS for s in self.solvers):
            raise InvalidArgumentError(f"labels: unknown solver in {self.solvers}")


@dataclass(frozen=True)
class MethodsConfig:
    """Which methods run, and the oracle-free rules that set their knobs."""

    solvers: tuple[str, ...] = SOLVERS  # the eraser's methods, each with the calibrated and the plain step
    ascent_steps: tuple[int, ...] = (1, 2, 4, 8)  # gradient-ascent step counts measured (ascending)
    guard_size: int = 16  # held-out retained samples the ascent and first-order rules watch
    # CG's path step (the cg/path row): exact products over 16 retained samples, up to 6 iterates walked; its own
    # eraser, as the cg/calibrated and cg/plain rows keep the eraser config's CG (PCG-4 over the whole sample)
    cg_path: CgConfig = CgConfig(max_iterations=6, precondition=True, sample_size=16)

    def __post_init__(self) -> None:
        if any(s not in SOLVERS for s in self.solvers):
            raise InvalidArgumentError(f"methods: unknown solver in {self.solvers}; known: {', '.join(SOLVERS)}")
        if not self.ascent_steps or list(self.ascent_steps) != sorted(set(self.ascent_steps)) or self.ascent_steps[0] < 1:
            raise InvalidArgumentError(f"methods: ascent_steps must be ascending positive counts, got {self.ascent_steps}")


@dataclass(frozen=True)
class BenchConfig:
    """Everything one run needs; saved beside its results."""

    base: str
    # tasks
    facts: FactsConfig = FactsConfig()
    labels: LabelsConfig = LabelsConfig()
    # adapter and erasure
    training: TrainingConfig = TrainingConfig(rank=8, alpha=16.0, epochs=8, batch_size=8, learning_rate=3e-3, max_length=48)
    eraser: EraserConfig = EraserConfig(max_length=48)
    methods: MethodsConfig = MethodsConfig()
    # measurement
    text_windows: int = 8  # general-text windows for perplexity
    text_length: int = 64  # tokens per window
    eval_batch: int = 16  # samples per evaluation forward pass
    threads: int = 2  # torch threads (two shared cores)

    def __post_init__(self) -> None:
        lengths = {self.training.max_length} | ({self.labels.training.max_length} if self.labels.train else set())
        if lengths != {self.eraser.max_length}:
            raise InvalidArgumentError("eraser and training max_length must match: they must see the same tokens")
        if min(self.text_windows, self.text_length, self.eval_batch, self.threads) < 1:
            raise InvalidArgumentError("text_windows, text_length, eval_batch and threads must be positive")


# the 5% removal (two people), and query modification and response correction of 5% of the facts (ten), on the
# headline run's people, adapter and knobs; the 1% and 10% removals and the noise seeds are the headline run's
_EXTRA_FACTS = FactsConfig(entities=48, attributes=4, reference_entities=8, fractions=(0.05,), edit_fraction=0.05,
                           noise_seeds=())


def _eraser(max_length: int, *, sample: int, cg_iterations: int, lissa_depth: int, rank: int = 24) -> EraserConfig:
    # the spectral basis is of the EK-FAC-preconditioned operator, as measured (README, "The spectral path")
    # NOTE: CG stays EK-FAC-preconditioned here, as in the measured smollm2 table (cg/plain gap 0.86): the library's
    # default turned preconditioning off after that run, and unpreconditioned CG-4 on the first 1% request closed
    # a quarter of the gap (forget loss 0.55 against PCG-4's 2.05, oracle 2.10; outside the benchmark, issue 22)
    return EraserConfig(
        max_length=max_length, curvature=CurvatureConfig(sample_size=sample, batch_size=8), spectral=SpectralConfig(rank=rank, precondition=True),
        cg=CgConfig(tolerance=1e-2, max_iterations=cg_iterations, precondition=True), lissa=LissaConfig(depth=lissa_depth, power_iterations=4),
        calibration=CalibrationConfig(bisection_steps=10),
    )


def preset(base: str, *, quick: bool = False, extra: bool = False) -> BenchConfig:
    """The configuration used for `base` (tiny, smollm2-135m or a folder); quick: the test's small version;
    extra: the facts tasks the headline run of a real model leaves out (tiny's run has them all)."""
    if extra:
        if base == "tiny" or quick:
            raise InvalidArgumentError("the extra run is for real models: tiny's run already has every task")
        return replace(preset(base), facts=_EXTRA_FACTS, labels=LabelsConfig(train=0, solvers=()))
    if base == "tiny":
        # tiny's tokenizer is byte-level: a labelling prompt alone is about 70 tokens
        training = TrainingConfig(rank=8, alpha=16.0, epochs=40, batch_size=8, learning_rate=1e-2, max_length=128)
        labels = LabelsConfig(training=TrainingConfig(rank=8, alpha=16.0, epochs=20, batch_size=8, learning_rate=1e-2, max_length=128))
        if quick:
            return BenchConfig(
                base, facts=FactsConfig(entities=6, attributes=2, reference_entities=2, nonmember_entities=2,
                                        paraphrase_retain=6, fractions=(0.1,), noise_seeds=(1,), removal_repeats=2),
                labels=LabelsConfig(train=0, solvers=()), training=training,
                eraser=_eraser(128, sample=8, cg_iterations=5, lissa_depth=10, rank=8),
                methods=MethodsConfig(solvers=("spectral", "ekfac", "cg"), ascent_steps=(1, 4)), text_windows=2,
            )
        return BenchConfig(
            base, facts=FactsConfig(entities=20, attributes=3, fractions=(0.01, 0.05, 0.1), edit_fraction=0.05, removal_repeats=3),
            labels=labels, training=training, eraser=_eraser(128, sample=32, cg_iterations=20, lissa_depth=100),
        )
    # 8 epochs at a constant 3e-3 left retain recall at 86% and retraining seeds 22 points apart: train until
    # the facts are memorized, with the rate decaying to 0 so that every run settles (12 epochs did at 24 entities;
    # at 48 one of three retrainings stopped at 88% retain recall, the others at 96-97%)
    return BenchConfig(
        # 4 reference people (16 facts) gave a target that two never-trained sets of this size put 1.1 nats apart:
        # 8 halve the variance of the step's target
        # 1% of 48 entities is one entity (the headline); 10% is five, to see how a larger forget set behaves.
        # 24 entities made one entity 4% of the data and one retained fact 1.1 points of retain recall, so "within
        # 1 point of the oracle" meant "the same facts"; at 48 a fact is 0.53 points.
        # One 1% request is one entity: CG's plain step closed 98% of the gap for the first entity and 54% for the
        # second (oracle forget loss 2.10 vs 3.57), so the headline averages three entities' requests
        base, facts=FactsConfig(entities=48, attributes=4, reference_entities=8, fractions=(0.01, 0.1), removal_repeats=3),
        labels=LabelsConfig(training=TrainingConfig(rank=8, alpha=16.0, epochs=10, batch_size=8, learning_rate=3e-3,
                                                    decay="linear", max_length=48)),
        training=TrainingConfig(rank=8, alpha=16.0, epochs=16, batch_size=8, learning_rate=5e-3, decay="linear", max_length=48),
        # the curvature sample is a third of the training set, as it was at 24 entities: with 32 of 192 samples the
        # retained curvature left most retained facts unprotected and every calibrated step broke the guard
        eraser=_eraser(48, sample=64, cg_iterations=4, lissa_depth=12),
        methods=MethodsConfig(solvers=SOLVERS, ascent_steps=(1, 2, 4, 8)),
    )
