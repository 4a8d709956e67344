"""A person's slips with the batch jobs, refused in one line before any store or server is touched: a
mistyped store, a PostgreSQL that refuses connections, a campaign that cannot run. The slips that need
a process boundary (``ledger serve``, ``python -m``) are tests/e2e/test_slips.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scripts import compliance_report, export_history, release_due_numbers, reverification, verify_ledger


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_offline_tools_on_a_postgres_refusing_connections_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moved from tests/e2e/test_slips.py."""
    url = f"postgresql://ledger:secret@127.0.0.1:{free_port()}/ledger"
    assert verify_ledger.main(["--db", url]) == 1
    assert export_history.main(["--db", url, "--number", "+8613800138000", "-o", str(tmp_path / "e.jsonl")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["verify_ledger", "export_history"], lines
    assert all("cannot use the PostgreSQL store" in line and "--db" in line for line in lines), lines
    assert list(tmp_path.iterdir()) == []


def test_scripts_given_a_mistyped_db_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved from tests/e2e/test_slips.py."""
    monkeypatch.chdir(tmp_path)
    typo = "sqlite:///typo.db"
    assert verify_ledger.main(["--db", typo]) == 1
    assert compliance_report.main(["--db", typo, "-o", str(tmp_path / "r.html")]) == 1
    assert release_due_numbers.main(["--db", typo, "--dry-run"]) == 1
    assert export_history.main(["--db", typo, "--number", "+8613800138000", "-o", str(tmp_path / "e.jsonl")]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all("no ledger at typo.db" in line and "--db" in line for line in lines), err
    assert not (tmp_path / "typo.db").exists()


def test_the_campaign_refuses_what_it_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Moved from tests/e2e/test_reverification.py: refused (exit 2) before the store or the server is read."""
    base = ["--db", f"sqlite:///{tmp_path}/none.db", "--target", f"127.0.0.1:{free_port()}"]
    base += ["--deadline", "2026-01-01", "-o", str(tmp_path / "x.csv")]
    assert reverification.main(["--campaign", "c1", *base]) == 2
    assert "--verified-before DATE, --methods LIST, or both" in capsys.readouterr().err
    assert reverification.main(["--campaign", "c1", "--methods", "RETINA_SCAN", *base]) == 2
    assert "--methods takes a comma-separated list of" in capsys.readouterr().err
    assert reverification.main(["--campaign", "bad name", "--methods", "PASSPORT_CHECK", *base]) == 2
    assert "--campaign takes 1-64 letters" in capsys.readouterr().err
    assert reverification.main(["--campaign", "c1", "--verified-before", "2026-13-01", *base]) == 2
    assert "--verified-before '2026-13-01' is not a date" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
