"""Generate the Python protobuf and gRPC modules in ``ledger/v1/`` from ``protos/``.

Usage: ``python -m scripts.gen_protos [--out DIR]``. The output is committed; the test
``tests/test_generated_code.py`` regenerates it into a temporary folder and fails when it differs.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

from ledger.cli import one_line_errors

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = Path("ledger") / "v1"
INIT_TEXT = '"""Generated protobuf and gRPC modules for package ledger.v1 (do not edit)."""\n'


def proto_files() -> list[Path]:
    """Return the proto sources of package ``ledger.v1``, sorted for a stable output."""
    return sorted((PROTOS / PACKAGE_DIR).glob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Write the generated modules under ``out/ledger/v1`` and return their paths."""
    target = out / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*_pb2*.py*"):
        stale.unlink()
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p.relative_to(PROTOS)) for p in proto_files()),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit status {code}")
    (target / "__init__.py").write_text(INIT_TEXT)
    return sorted(p for p in target.iterdir() if p.is_file())


@one_line_errors("gen_protos")
def main(argv: list[str] | None = None) -> int:
    """Generate the modules; return 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: project root)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
