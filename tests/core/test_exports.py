"""loravault.core's public names: loaded lazily at run time, seen eagerly by type checkers, listed once."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import loravault.core as core

INIT = Path(core.__file__)


def _type_checking_imports() -> dict[str, str]:
    """name -> submodule, read from the `if TYPE_CHECKING:` block of core/__init__.py."""
    tree = ast.parse(INIT.read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name} must be imported as itself (a re-export)"
            assert alias.name not in found, f"{alias.name} imported twice"
            found[alias.name] = node.module
    return found


def test_type_checking_block_imports_exactly_the_lazy_names():
    assert _type_checking_imports() == core._SOURCES


def test_all_is_the_lazy_mapping_without_repeats():
    assert core.__all__ == sorted(core._SOURCES)
    assert len(core._SOURCES) == sum(len(names) for names in core._EXPORTS.values())


@pytest.mark.parametrize("name", sorted(core._SOURCES))
def test_each_name_comes_from_its_submodule(name):
    module = importlib.import_module(f"loravault.core.{core._SOURCES[name]}")
    assert getattr(core, name) is getattr(module, name)


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'load_bse'"):
        core.load_bse  # noqa: B018


def test_importing_the_error_classes_loads_neither_torch_nor_transformers():
    code = ("import sys; from loravault.core import NotFoundError, LoravaultError; "
            "print(sorted({'torch', 'transformers', 'peft'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
