"""The federation's run config, read once from Flower's run config (pyproject [tool.flwr.app.config] or
`flwr run --run-config`) into frozen dataclasses that validate themselves.

Flower keys are kebab-case (`num-server-rounds`); each field here is the same name in snake_case, grouped by
stage: `VaultSettings` (where the coordinator commits), `LocalTraining` (what each client runs), `RoundSettings`
(how rounds are run and aggregated), `Faults` (fault injection for tests and demos), `Outputs` (files).

    >>> config = RunConfig.from_flower({"num-server-rounds": 2, "aggregation": "ffa"})
    >>> config.rounds.num_server_rounds
    2
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loravault.core.aggregation import AGGREGATION_METHODS
from loravault.core.errors import InvalidArgumentError

__all__ = ["Faults", "LocalTraining", "Outputs", "RoundSettings", "RunConfig", "VaultSettings"]


@dataclass(frozen=True)
class VaultSettings:
    """Where the coordinator commits rounds, as which tenant, signed by which keys."""

    vault_address: str = ""  # host:port of the loravault server; empty: rounds are not committed
    token_file: str = ""  # the federation tenant's bearer token
    key_files: str = ""  # comma-separated private signing keys of the coordinator (threshold of them)
    adapter: str = "shared"  # the shared adapter's name in the vault

    def __post_init__(self) -> None:
        if self.vault_address and not (self.token_file and self.key_files):
            raise InvalidArgumentError("vault-address needs token-file and key-files: the coordinator signs rounds")

    @property
    def key_paths(self) -> list[str]:
        return [p.strip() for p in self.key_files.split(",") if p.strip()]


@dataclass(frozen=True)
class LocalTraining:
    """The shared adapter's shape and each client's local training per round."""

    base: str = "tiny"  # core.load_base name or a local model folder
    rank: int = 4
    alpha: float = 8.0
    target_modules: str = "q_proj,v_proj"  # comma-separated
    local_steps: int = 8  # optimizer steps per client per round
    batch_size: int = 8
    learning_rate: float = 5e-3
    max_length: int = 64
    seed: int = 0  # the shared A's initialisation (FFA: frozen forever) and data order
    torch_threads: int = 1  # per client process; the machines are shared

    def __post_init__(self) -> None:
        for name in ("rank", "local_steps", "batch_size", "max_length", "torch_threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be an integer >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0 and self.alpha > 0):
            raise InvalidArgumentError("learning-rate and alpha must be positive")
        if not self.modules:
            raise InvalidArgumentError("target-modules names no module")

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted(m.strip() for m in self.target_modules.split(",") if m.strip()))


@dataclass(frozen=True)
class RoundSettings:
    """How many rounds, how they are aggregated, and when a round counts."""

    num_server_rounds: int = 2
    aggregation: str = "ffa"  # ffa (exact) | stack (FLoRA, SVD re-compressed) | fedavg (approximate)
    min_replies: int = 2  # a round with fewer successful replies commits nothing
    min_nodes: int = 2  # nodes that must be connected before a round starts
    round_timeout: float = 600.0  # seconds to wait for replies; nodes that miss it are reported
    facts_per_client: int = 8  # made-up people per client (federation/data.py)

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATION_METHODS:
            raise InvalidArgumentError(f"aggregation {self.aggregation!r} is not one of {', '.join(AGGREGATION_METHODS)}")
        for name in ("num_server_rounds", "min_replies", "min_nodes", "facts_per_client"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be an integer >= 1")
        if not (math.isfinite(self.round_timeout) and self.round_timeout > 0):
            raise InvalidArgumentError("round-timeout must be positive seconds")


@dataclass(frozen=True)
class Faults:
    """Fault injection: the client of one partition raises in one round's training (-1: none)."""

    fail_partition: int = -1
    fail_round: int = 1


@dataclass(frozen=True)
class Outputs:
    """Where results land on the machine that produces them."""

    ledger_dir: str = ""  # clients' local record of sample ids per round; empty: ~/.loravault/federation
    report_file: str = ""  # the ServerApp writes its per-round report (JSON) here; empty: none


@dataclass(frozen=True)
class RunConfig:
    vault: VaultSettings = field(default_factory=VaultSettings)
    training: LocalTraining = field(default_factory=LocalTraining)
    rounds: RoundSettings = field(default_factory=RoundSettings)
    faults: Faults = field(default_factory=Faults)
    outputs: Outputs = field(default_factory=Outputs)

    @classmethod
    def from_flower(cls, run_config: Mapping[str, Any]) -> RunConfig:
        """Split a flat Flower run config (kebab-case keys) into the sections; unknown keys are refused."""
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        classes = {"vault": VaultSettings, "training": LocalTraining, "rounds": RoundSettings, "faults": Faults,
                   "outputs": Outputs}
        owner = {f.name: section for section, c in classes.items() for f in dataclasses.fields(c)}
        values: dict[str, dict[str, Any]] = {name: {} for name in sections}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in owner:
                raise InvalidArgumentError(f"run config key {key!r} is not a federation setting")
            values[owner[name]][name] = _coerce(classes[owner[name]], name, value)
        return cls(**{section: classes[section](**fields) for section, fields in values.items()})


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Flower hands TOML ints for float fields (`alpha = 8`): widen them, never narrow."""
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
