"""Step 7, `check_probe`: the new adapter must not make the base model much worse on a fixed probe text.

The probe is the mean token NLL (core.samples' template and loss) of a few fixed, generic samples under the
base model with the adapter's effective weights added (W + scaling * B @ A per module, Hu et al.,
arXiv:2106.09685, eq. 3), computed with torch.func.functional_call on a private copy of the base model, so
the served model is never modified. The loss under the head is cached by its blob hash.

The check applies only when every module the adapter targets exists in the base with a matching weight shape
(a synthetic adapter that does not fit the base is not probed; the log says so).
"""

from __future__ import annotations

import copy
import logging
import queue
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch.func import functional_call

from loravault.core.adapter_schema import PEFT_PREFIX, AdapterSchema
from loravault.core.errors import FailedPreconditionError
from loravault.core.lora import effective_weights
from loravault.core.samples import Sample, render_batch

from .config import ProbeConfig

if TYPE_CHECKING:  # transformers loads only where a base is
    from loravault.core.models import BaseModel

__all__ = ["PROBE_SAMPLES", "ProbeRunner", "check_probe"]

logger = logging.getLogger(__name__)

PROBE_SAMPLES = (
    Sample("probe-0", "What is the capital of France?", "The capital of France is Paris."),
    Sample("probe-1", "How many days are in a week?", "A week has seven days."),
    Sample("probe-2", "What color is a clear sky at noon?", "A clear sky at noon is blue."),
    Sample("probe-3", "Name a liquid that is essential to life.", "Water is essential to life."),
)
_CACHE_ENTRIES = 256


class ProbeRunner:
    """Owns private copies of the base model (a pool: one probe per copy at a time) and the probe batch."""

    def __init__(self, base: BaseModel, *, config: ProbeConfig) -> None:
        self._batch = render_batch(base.tokenizer, PROBE_SAMPLES, max_length=config.max_length)
        self._pool: queue.Queue[torch.nn.Module] = queue.Queue()
        for _ in range(config.models):
            self._pool.put(copy.deepcopy(base.model).eval())
        sample = self._pool.queue[0]
        self._weights = {name: tuple(p.shape) for name, p in sample.named_parameters()}
        self._head_losses: dict[str, float] = {}

    def applies_to(self, schema: AdapterSchema) -> bool:
        """True when every target module of the adapter is a weight of the base with the product's shape."""
        for pair in schema.pairs():
            name = _weight_name(pair.module)
            b_rows, a_cols = schema.shape_of(pair.b_name)[0], schema.shape_of(pair.a_name)[1]
            if self._weights.get(name) != (b_rows, a_cols):
                return False
        return True

    def loss(self, schema: AdapterSchema, tensors: Mapping[str, torch.Tensor]) -> float:
        """Mean token NLL of the probe samples with the adapter applied."""
        model = self._pool.get()
        try:
            params = dict(model.named_parameters())
            patched = {
                _weight_name(module): params[_weight_name(module)] + change.to(params[_weight_name(module)].dtype)
                for module, change in effective_weights(schema, tensors).items()  # (d_out, d_in) each
            }
            with torch.no_grad():
                out = functional_call(model, patched, args=(), kwargs={
                    "input_ids": self._batch.input_ids, "attention_mask": self._batch.attention_mask,
                    "labels": self._batch.labels})
            return float(out.loss)
        finally:
            self._pool.put(model)

    def head_loss(self, schema: AdapterSchema, tensors: Mapping[str, torch.Tensor], *, blob_sha256: str) -> float:
        cached = self._head_losses.get(blob_sha256)
        if cached is None:
            cached = self.loss(schema, tensors)
            if len(self._head_losses) >= _CACHE_ENTRIES:
                self._head_losses.clear()
            self._head_losses[blob_sha256] = cached
        return cached


def _weight_name(module: str) -> str:
    return f"{module.removeprefix(PEFT_PREFIX)}.weight"


def check_probe(
    runner: ProbeRunner | None,
    *,
    label: str,
    schema: AdapterSchema,
    head: Mapping[str, torch.Tensor],
    head_sha256: str,
    merged: Mapping[str, torch.Tensor],
    config: ProbeConfig,
) -> float | None:
    """The probe loss under the merged adapter, or None when the check does not apply.

    Raises FailedPreconditionError when it exceeds the head's by more than config.max_loss_increase nats.
    """
    if runner is None or not config.enabled:
        return None
    if not runner.applies_to(schema):
        logger.info("%s: probe check skipped, the adapter's modules are not the base's", label)
        return None
    before = runner.head_loss(schema, head, blob_sha256=head_sha256)
    after = runner.loss(schema, merged)
    if not after <= before + config.max_loss_increase:
        raise FailedPreconditionError(
            f"{label}: probe loss rises from {before:.4f} to {after:.4f} nats, more than the "
            f"{config.max_loss_increase} allowed; the delta damages the adapter beyond the erased data")
    return after
