"""The layout table of the architecture page (docs/architecture.md) names every module of ``ledger/``
(generated code aside)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_ledger_module_has_a_line_in_the_layout_table() -> None:
    page = ROOT.joinpath("docs", "architecture.md").read_text()
    table = page[page.index("\n## Layout\n") : page.index("\n## Changing this code safely\n")]
    modules = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "ledger").rglob("*.py"))
        if "v1" not in p.parts and (p.name != "__init__.py" or p.parent.name == "adapters")
    ]
    missing = [m for m in modules if f"| `{m}` |" not in table]
    assert missing == []
