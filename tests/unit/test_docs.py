"""What a clone holds: the README's links resolve inside the repository, and the files a ledger writes
beside itself are ignored by git."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_links_and_paths_resolve_in_the_repository() -> None:
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    assert "[docs/DESIGN.md](docs/DESIGN.md)" in text
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    assert "API" in design and len(design.splitlines()) > 100


def test_every_file_a_ledger_writes_is_ignored() -> None:
    patterns = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip()]
    for name in (
        "ledger.db",
        "ledger.db-wal",
        "ledger.keys.db",
        "ledger.views.db",
        "ledger.views.db-wal",
        "ledger.views.db-shm",
        "ledger.master.key",
    ):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
