"""The README's layout table names every module of ``ledger/`` (generated code aside)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_ledger_module_has_a_line_in_the_layout_table() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    table = readme[readme.index("## Layout") : readme.index("## Changing this code safely")]
    modules = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "ledger").rglob("*.py"))
        if "v1" not in p.parts and (p.name != "__init__.py" or p.parent.name == "adapters")
    ]
    missing = [m for m in modules if f"| `{m}` |" not in table]
    assert missing == []
