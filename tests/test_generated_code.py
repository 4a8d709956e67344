"""The committed protobuf modules must be exactly what scripts/gen_protos.py makes from protos/."""

from __future__ import annotations

from pathlib import Path

from scripts import gen_protos

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = gen_protos.generate(tmp_path)
    committed_dir = ROOT / "ledger" / "v1"
    names = sorted(p.name for p in fresh)
    assert names == sorted(p.name for p in committed_dir.iterdir() if p.is_file()), (
        "ledger/v1 has missing or extra files; run: python -m scripts.gen_protos"
    )
    stale = [p.name for p in fresh if p.read_bytes() != (committed_dir / p.name).read_bytes()]
    assert not stale, f"stale generated code {stale}; run: python -m scripts.gen_protos"


def test_every_proto_is_generated() -> None:
    protos = {p.stem for p in (ROOT / "protos" / "ledger" / "v1").glob("*.proto")}
    modules = {p.name.removesuffix("_pb2.py") for p in (ROOT / "ledger" / "v1").glob("*_pb2.py")}
    assert protos == modules
