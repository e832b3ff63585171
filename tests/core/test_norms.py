"""The one Frobenius norm and the finiteness it proves, shared by the server's checks, the merge and the reports."""

import math

import pytest
import torch

from loravault.core.norms import finite_frobenius_norm, finite_norm, frobenius_norm


@pytest.mark.parametrize(("value", "finite"), [(float("nan"), False), (float("inf"), False), (3e38, True)],
                         ids=["nan", "inf", "finite-but-overflowing"])
def test_finite_norm_tells_nonfinite_values_from_an_overflowing_norm(value, finite):
    tensor = torch.ones(64)
    tensor[17] = value
    tensor[3] = 3e38 if finite else 1.0  # two 3e38s overflow the float32 norm
    assert (finite_norm(tensor) is not None) == finite
    assert finite_norm(torch.full((3, 4), 2.0)) == pytest.approx(frobenius_norm({"t": torch.full((3, 4), 2.0)}))


def test_float32_norm_agrees_with_the_float64_reference():
    tensors = {"a": torch.randn(300, 70), "b": torch.randn(70, 300) * 1e3}
    reference = float(torch.sqrt(sum(t.to(torch.float64).pow(2).sum() for t in tensors.values())))
    assert frobenius_norm(tensors) == pytest.approx(reference, rel=1e-5)  # float32 sums of 2e4 terms


def test_float64_tensors_keep_their_precision():
    tiny = torch.full((1000,), 1e-3, dtype=torch.float64) + torch.arange(1000, dtype=torch.float64) * 1e-12
    assert frobenius_norm([tiny]) == pytest.approx(float(tiny.pow(2).sum().sqrt()), rel=1e-14)


def test_finite_frobenius_norm_names_the_first_nonfinite_tensor_in_order():
    tensors = [("a", torch.ones(4)), ("b", torch.tensor([1.0, math.inf])), ("c", torch.tensor([math.nan]))]
    assert finite_frobenius_norm(tensors[:1]) == (2.0, None)
    norm, name = finite_frobenius_norm(tensors)
    assert math.isnan(norm) and name == "b"
