"""In-process simulation of the federation: Flower's simulation engine (Ray backend) with N virtual clients,
1 CPU and no GPU each, on this machine only.

    run_simulation_here(num_clients=3, run_config={"num-server-rounds": 2, "vault-address": target, ...})

The run config is layered over both apps (the engine itself gives them an empty one); `partition-id` comes
from the engine's node config.

Ray is started here, before the engine, which reuses a running Ray and shuts it down at the end: Ray's head
waits a fixed 30 s (not configurable) for its GCS to come up, which a loaded 2-core machine has run out of
("Timed out waiting for file .../gcs_server_port", and a GCS that was gone before its log file existed). A
start that fails is retried; the simulation itself never is.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import ray
from flwr.simulation import run_simulation

from .client_app import make_client_app
from .server_app import make_server_app

__all__ = ["CLIENT_RESOURCES", "run_simulation_here"]

logger = logging.getLogger(__name__)

CLIENT_RESOURCES = {"num_cpus": 1, "num_gpus": 0}  # Ray actor per client: one core, no accelerator

# NOTE: set before Ray starts, so the engine never reaches the network (usage stats, dashboard) or updates.
_OFFLINE_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                        "RAY_DEDUP_LOGS": "0"}
_RAY_START_ATTEMPTS = 3


def run_simulation_here(*, num_clients: int, run_config: Mapping[str, Any], num_cpus: int | None = None) -> None:
    """Run the ServerApp and `num_clients` ClientApps in this process (Ray workers for the clients)."""
    os.environ.update(_OFFLINE_ENVIRONMENT)
    init_args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if num_cpus is not None:
        init_args["num_cpus"] = num_cpus
    _start_ray(init_args)
    try:
        run_simulation(server_app=make_server_app(run_config), client_app=make_client_app(run_config),
                       num_supernodes=num_clients,
                       backend_config={"client_resources": dict(CLIENT_RESOURCES), "init_args": init_args})
    finally:
        ray.shutdown()  # the engine's own shutdown already ran when it finished; this covers its failures


def _start_ray(init_args: Mapping[str, Any], *, attempts: int = _RAY_START_ATTEMPTS) -> None:
    """ray.init as Flower's Ray backend calls it (workers get this driver's sys.path), retried on a failed start."""
    pythonpath = os.pathsep.join([*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["PYTHONPATH"] = pythonpath
    for attempt in range(1, attempts + 1):
        try:
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
            return
        except Exception as error:  # Ray raises RuntimeError, TimeoutError or FileNotFoundError from its start
            ray.shutdown()
            if attempt == attempts:
                raise
            logger.warning("Ray did not start (attempt %d of %d: %s); starting it again", attempt, attempts, error)
