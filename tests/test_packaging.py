"""The layout contract: every part is a subpackage of loravault, listed in pyproject, with a tested __all__."""

import importlib
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("proto", "core", "eraser", "server", "client", "federation", "bench")


def _package_folders() -> set[str]:
    found = set()
    for part in PARTS:
        for init in (ROOT / part).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / part)
            found.add(".".join(("loravault", part, *rel.parts)))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _package_folders() == listed


@pytest.mark.parametrize("part", PARTS)
def test_part_imports_as_loravault_subpackage(part):
    module = importlib.import_module(f"loravault.{part}")
    assert Path(module.__file__).resolve().parent == ROOT / part


@pytest.mark.parametrize("part", ["proto", "core", "eraser", "server", "client", "federation"])
def test_public_names_exist_and_are_listed(part):
    module = importlib.import_module(f"loravault.{part}")
    assert module.__all__, f"loravault.{part} must declare __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("part", PARTS)
def test_part_ships_py_typed(part):
    assert (ROOT / part / "py.typed").exists()


def test_wheel_holds_only_the_loravault_namespace(tmp_path):
    """A built wheel ships every part under loravault/ (stubs and migrations included) and nothing top-level."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=240,
    )
    (wheel,) = tmp_path.glob("loravault-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"loravault", next(t for t in tops if t.endswith(".dist-info"))}
    assert "loravault/proto/loravault_pb2_grpc.py" in names
    assert "loravault/server/py.typed" in names
    assert not [n for n in names if n.startswith("loravault/") and n.count("/") == 1 and n.endswith(".py")]
