"""The benchmark's metric definitions on hand-made inputs, where the right answer is known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from loravault.bench.unlearning.metrics import gap_closed, kl_from_reference, membership_auc


@pytest.mark.parametrize(
    ("erased", "original", "retrained", "expected"),
    [
        (3.0, 1.0, 3.0, 1.0),  # exactly retraining's value
        (1.0, 1.0, 3.0, 0.0),  # no change at all
        (2.0, 1.0, 3.0, 0.5),  # halfway
        (4.0, 1.0, 3.0, 0.5),  # overshooting by half the gap costs as much as stopping half short
        (5.0, 1.0, 3.0, 0.0),  # overshooting by the whole gap is as bad as doing nothing
        (9.0, 1.0, 3.0, -2.0),  # far overshoot is reported raw, below zero
        (2.0, 3.0, 1.0, 0.5),  # the gap may run downwards (e.g. recall falling)
    ],
    ids=["exact", "no-op", "half", "overshoot-half", "overshoot-full", "overshoot-raw", "downward"],
)
def test_gap_closed_is_two_sided(erased: float, original: float, retrained: float, expected: float) -> None:
    assert gap_closed(erased=erased, original=original, retrained=retrained) == pytest.approx(expected)


def test_gap_closed_is_nan_when_there_is_no_gap() -> None:
    assert math.isnan(gap_closed(erased=2.0, original=1.0, retrained=1.0))


@pytest.mark.parametrize(
    ("members", "nonmembers", "expected"),
    [([0.1, 0.2], [1.0, 2.0], 1.0), ([1.0, 2.0], [0.1, 0.2], 0.0), ([1.0], [1.0], 0.5), ([0.1, 3.0], [1.0, 2.0], 0.5)],
    ids=["members-lower", "members-higher", "tie", "mixed"],
)
def test_membership_auc_counts_lower_member_losses(members: list[float], nonmembers: list[float], expected: float) -> None:
    assert membership_auc(torch.tensor(members), torch.tensor(nonmembers)) == pytest.approx(expected)


def test_kl_from_reference_is_zero_for_equal_distributions_and_matches_hand_computation() -> None:
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    assert kl_from_reference(p, p) == pytest.approx(0.0, abs=1e-12)
    by_hand = (0.0 + 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)) / 2
    assert kl_from_reference(p, q) == pytest.approx(by_hand, rel=1e-6)


def test_headline_tasks_are_chosen_by_content_not_by_key_order() -> None:
    from loravault.bench.unlearning.report import _smallest_removals

    tasks = {"query modification 5% (3 facts)": {"request": {"query_modification": 3}},
             "removal 10% (2 of 20 entities)": {"request": {"removal": 6}},
             "removal 5% (1 of 20 entities)": {"request": {"removal": 3}},
             "removal 1% (1 of 20 entities) #10": {"request": {"removal": 3}},
             "removal 1% (1 of 20 entities) #2": {"request": {"removal": 3}}}
    assert _smallest_removals(tasks) == ["removal 1% (1 of 20 entities) #2", "removal 1% (1 of 20 entities) #10"]
    assert _smallest_removals({"removal 1% (1 of 20 entities)": {"request": {"removal": 3}}}) == ["removal 1% (1 of 20 entities)"]


def test_headline_averages_the_requests_and_refuses_a_method_refused_by_any() -> None:
    from loravault.bench.unlearning.report import headline

    def row(gap: float, retain: float, seconds: float, refused: str | None = None) -> dict:
        return {"metrics": {"forget_loss": gap, "retain_recall": 100 + retain}, "gap_closed": {"forget_loss": gap},
                "retain_recall_minus_retrain_points": retain, "seconds": seconds, "uses_curvature": True,
                "refused": refused, "details": {}}

    def task(rows: dict, retrain: float) -> dict:
        return {"request": {"removal": 4}, "retrain_seconds": retrain, "curvature_build_seconds": 10.0,
                "rows": {"retrain (oracle)": row(1.0, 0.0, retrain), "original (no-op)": row(0.0, 0.0, 0.0), **rows}}

    tasks = {"removal 1% (1 of 48 entities) #1": task({"a": row(0.9, -0.5, 2.0), "b": row(1.0, 0.0, 1.0)}, 200.0),
             "removal 1% (1 of 48 entities) #2": task({"a": row(0.7, -1.0, 2.0), "b": row(0.0, 0.0, 1.0, "guard")}, 100.0)}
    head = headline({"facts": {"tasks": tasks}})
    assert head["requests"] == 2 and head["best_method"] == "a"  # b was refused on the second request
    assert head["best_gap_closed_forget_loss"] == pytest.approx(0.8)
    assert head["retain_recall_minus_retrain_points"] == pytest.approx(-0.75)
    assert head["speedup_amortized"] == pytest.approx(75.0)  # mean retraining 150 s over a mean 2 s
    assert head["speedup_with_curvature"] == pytest.approx(12.5)
    assert head["methods"]["b"]["refused_requests"] == 1 and "speedup_amortized" not in head["methods"]["b"]


def test_scoring_gives_speedups_to_answered_methods_only_and_picks_the_best_within_the_retain_rule() -> None:
    from types import SimpleNamespace

    from loravault.bench.unlearning.scoring import score_task

    def row(forget_loss: float, retain: float, seconds: float, refused: str | None = None) -> dict:
        return {"metrics": {"forget_loss": forget_loss, "retain_recall": retain}, "seconds": seconds,
                "uses_curvature": True, "refused": refused, "details": {}}

    rows = {"retrain (oracle)": row(3.0, 90.0, 100.0), "original (no-op)": row(1.0, 95.0, 0.0),
            "close/calibrated": row(2.9, 90.5, 2.0), "closer-but-harmful": row(3.0, 80.0, 1.0),
            "refused/calibrated": row(1.0, 95.0, 4.0, refused="guard bound")}
    task = SimpleNamespace(gap_metrics=("forget_loss",), new_train=[None] * 9,
                           request=SimpleNamespace(kinds=lambda: {"removal": 1}))
    scored = score_task(rows, task, curvature_seconds=8.0)
    assert scored["rows"]["close/calibrated"]["speedup_amortized"] == pytest.approx(50.0)
    assert scored["rows"]["close/calibrated"]["speedup_with_curvature"] == pytest.approx(10.0)
    assert "speedup_amortized" not in scored["rows"]["refused/calibrated"]
    assert scored["best_method"] == "close/calibrated"  # the other is 10 points below the oracle's retain recall
    assert scored["best_gap_closed_forget_loss"] == pytest.approx(0.95)
