"""Logits at scored positions only (DecoderSplit): the same losses, gradients and curvature as full logits."""

from __future__ import annotations

from dataclasses import replace

import torch

from eraser_problems import relative_error

from loravault.core import IGNORE_INDEX
from loravault.eraser import lora_objective, per_sample_gradients, scored_positions
from loravault.eraser.curvature import CurvatureOperator
from loravault.eraser.pseudo_gradients import collect_pseudo_gradients


def test_scored_positions_repeat_a_shorter_rows_last_position() -> None:
    x = IGNORE_INDEX
    targets = torch.tensor([[x, 5, 6, 7], [x, x, 9, x], [x, x, x, 4]])
    positions, picked = scored_positions(targets)
    assert positions.tolist() == [[1, 2, 3], [2, 2, 2], [3, 3, 3]]
    assert picked.tolist() == [[5, 6, 7], [9, x, x], [4, x, x]]


def test_a_peft_llama_is_split_into_decoder_and_head(tiny) -> None:
    split = tiny.objective.split
    assert split is not None and split.prefix.endswith(".") and isinstance(split.head, torch.nn.Linear)
    assert all(name.startswith(split.prefix) for name in tiny.objective.live_names)


def test_split_logits_give_the_full_logits_losses_gradients_and_curvature(tiny) -> None:
    full = replace(tiny.objective, split=None)
    samples = tiny.train[:6]
    batch = tiny.objective.render(samples)
    assert batch.positions is not None and batch.logit_targets.shape[1] < batch.targets.shape[1]
    unsplit = replace(batch, positions=None, position_targets=None)
    with torch.no_grad():
        split_loss = tiny.objective.per_sample_loss(tiny.theta, batch)
        assert relative_error(split_loss, full.per_sample_loss(tiny.theta, batch)) < 1e-6
        assert relative_error(split_loss, full.per_sample_loss(tiny.theta, unsplit)) < 1e-6
    gradients = per_sample_gradients(tiny.objective, tiny.theta, samples, progress=False)
    assert relative_error(gradients, per_sample_gradients(full, tiny.theta, samples, progress=False)) < 1e-5
    v = torch.randn(tiny.theta.numel(), generator=torch.Generator().manual_seed(0))
    for kind in ("gauss_newton", "hessian"):
        split_product = CurvatureOperator(tiny.objective, tiny.theta, samples, kind=kind)(v)
        assert relative_error(split_product, CurvatureOperator(full, tiny.theta, samples, kind=kind)(v)) < 1e-5
    pseudo = collect_pseudo_gradients(tiny.objective, tiny.theta, samples, seed=0, progress=False)
    same = collect_pseudo_gradients(full, tiny.theta, samples, seed=0, progress=False)
    assert all(relative_error(pseudo.gradients[n], same.gradients[n]) < 1e-5 for n in pseudo.gradients)


def test_no_split_when_something_happens_between_decoder_and_head(tiny) -> None:
    """A scale (or soft-cap) applied after the head would be skipped by head(decoder(x)): the probe catches it."""

    def scale(module, args, out):
        out.logits = out.logits * 2.0
        return out

    handle = tiny.model.get_base_model().register_forward_hook(scale)
    try:
        assert lora_objective(tiny.model, tiny.tokenizer).split is None
    finally:
        handle.remove()
    assert lora_objective(tiny.model, tiny.tokenizer).split is not None
