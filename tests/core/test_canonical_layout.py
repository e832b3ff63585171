"""The canonical layout writes the very bytes safetensors does, so the merge's hash is the signed result hash."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.core import CanonicalLayout, InvalidArgumentError, canonical_float32

# any text safetensors accepts as a name: JSON escaping (quotes, backslashes, control and non-ASCII
# characters) must come out exactly as safetensors' serde_json writes it
_NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
_SHAPES = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=3).map(tuple)


def _filled(layout: CanonicalLayout, tensors: dict[str, torch.Tensor]) -> bytes:
    buffer, views = layout.allocate()
    for name, view in views.items():
        view.copy_(tensors[name])
    return bytes(buffer)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_NAMES, _SHAPES, min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_filled_views_give_the_bytes_of_canonical_float32(shapes, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    layout = CanonicalLayout.of((name, tuple(t.shape)) for name, t in tensors.items())
    expected = canonical_float32(tensors)
    assert layout.total_bytes == len(expected)
    assert _filled(layout, tensors) == expected


def test_views_are_disjoint_and_shaped():
    layout = CanonicalLayout.of([("m.q_proj.lora_B.weight", (6, 2)), ("m.q_proj.lora_A.weight", (2, 6))])
    buffer, views = layout.allocate()
    views["m.q_proj.lora_B.weight"].fill_(0.0)
    views["m.q_proj.lora_A.weight"].fill_(1.0)
    assert views["m.q_proj.lora_A.weight"].shape == (2, 6)
    assert torch.count_nonzero(views["m.q_proj.lora_B.weight"]) == 0
    assert bytes(buffer[: len(layout.header)]) == layout.header  # filling a view never touches the header


def test_an_adapter_without_tensors_is_refused():
    with pytest.raises(InvalidArgumentError, match="at least one tensor"):
        CanonicalLayout.of([])
