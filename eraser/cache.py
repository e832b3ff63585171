"""The EK-FAC cache: factors on disk keyed by the adapter's hash, so every later request skips the curvature pass.

A file is named by the SHA-256 of the adapter's canonical float32 bytes and a digest of the curvature setup
(config and sample ids); its metadata repeats both and is checked on load, so a stale or foreign file is never
used. Files are safetensors, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from loravault.core import DeserializationError

from .config import CurvatureConfig
from .ekfac import EkfacFactors

__all__ = ["EkfacCache"]

logger = logging.getLogger(__name__)


class EkfacCache:
    """One folder of factor files; `None` as folder keeps nothing on disk."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @staticmethod
    def setup_digest(config: CurvatureConfig, ids: Sequence[str]) -> str:
        text = json.dumps({"config": asdict(config), "ids": sorted(ids)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, adapter_hash: str, setup: str) -> Path | None:
        return None if self.folder is None else self.folder / f"ekfac-{adapter_hash[:32]}-{setup[:12]}.safetensors"

    def load(self, adapter_hash: str, setup: str, *, device: torch.device) -> EkfacFactors | None:
        """The stored factors, or None when absent, unreadable or made for something else (then rebuilt)."""
        path = self.path(adapter_hash, setup)
        if path is None or not path.is_file():
            return None
        try:
            factors, metadata = EkfacFactors.from_bytes(path.read_bytes(), device=device)
        except DeserializationError as exc:
            logger.warning("ignoring unreadable EK-FAC cache file %s: %s", path, exc)
            return None
        if metadata.get("adapter") != adapter_hash or metadata.get("setup") != setup:
            logger.warning("ignoring EK-FAC cache file %s: made for another adapter or curvature setup", path)
            return None
        logger.info("EK-FAC factors loaded from %s", path)
        return factors

    def store(self, factors: EkfacFactors, adapter_hash: str, setup: str) -> None:
        path = self.path(adapter_hash, setup)
        if path is not None:
            factors.save(path, metadata={"adapter": adapter_hash, "setup": setup})
            logger.info("EK-FAC factors saved to %s", path)
