"""The simulation's Ray start: a failed start is retried a bounded number of times, then its error is raised."""

from __future__ import annotations

import pytest

from loravault.federation import simulation


class FlakyRay:
    """Stands in for the ray module: init fails `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures, self.inits, self.shutdowns = failures, [], 0

    def init(self, **kwargs: object) -> None:
        self.inits.append(kwargs)
        if len(self.inits) <= self.failures:
            raise FileNotFoundError("gcs_server.err")  # what a GCS gone before its log existed raised

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_failed_start_is_retried_with_the_same_arguments(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # restored after the test (_start_ray sets it, as Flower does)
    fake = FlakyRay(failures=2)
    monkeypatch.setattr(simulation, "ray", fake)
    simulation._start_ray({"num_cpus": 2, "include_dashboard": False})
    assert len(fake.inits) == 3 and fake.shutdowns == 2
    assert all(call["num_cpus"] == 2 and "PYTHONPATH" in call["runtime_env"]["env_vars"] for call in fake.inits)


def test_a_start_that_keeps_failing_raises_after_the_last_attempt(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    fake = FlakyRay(failures=5)
    monkeypatch.setattr(simulation, "ray", fake)
    with pytest.raises(FileNotFoundError):
        simulation._start_ray({}, attempts=3)
    assert len(fake.inits) == 3
