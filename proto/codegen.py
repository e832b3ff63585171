"""Regenerates the checked-in Python stubs from loravault.proto (`make proto`).

The .proto file is staged under loravault/proto/ in a scratch folder so that protoc writes imports as
`from loravault.proto import loravault_pb2`, which resolve in an editable install and in the wheel alike.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["PROTO_FILE", "GENERATED", "generate", "main"]

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILE = "loravault.proto"
GENERATED = ("loravault_pb2.py", "loravault_pb2.pyi", "loravault_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools, a development dependency) and write the stubs into `out_dir`."""
    from grpc_tools import protoc  # NOTE: imported here so the runtime never needs grpcio-tools

    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "loravault" / "proto"
        staged.mkdir(parents=True)
        shutil.copy(PROTO_DIR / PROTO_FILE, staged / PROTO_FILE)
        args = [
            "protoc",
            f"-I{scratch}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"loravault/proto/{PROTO_FILE}",
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_FILE}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            shutil.copy(staged / name, out_dir / name)
            written.append(out_dir / name)
    return written


def main() -> int:
    for path in generate(PROTO_DIR):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
