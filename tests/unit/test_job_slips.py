"""A person's slips with ``ledger`` and the batch jobs, called in process: refused in one line (never a
traceback) before any store is made or server is called: a mistyped store, a bad master key, a PostgreSQL
that refuses connections, a server that does not answer, a campaign that cannot run. The slips of a
process (``ledger serve``, ``python -m``) are tests/e2e/test_slips.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ledger.__main__ import main as ledger_main
from scripts import (
    compliance_report,
    export_history,
    recycling_check,
    release_due_numbers,
    reverification,
    verify_ledger,
)
from tests.conftest import TEST_MASTER_KEY


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


def said(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a slip printed on stderr, never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_bad_master_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved from tests/e2e/test_slips.py (test_a_bad_listen_address_or_master_key_is_one_line: ``migrate``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_MASTER_KEY", raising=False)
    (tmp_path / "k.key").write_text("junk\n")
    assert ledger_main(["migrate", "--master-key-file", "k.key"]) == 2
    assert said(capsys).startswith("ledger: master key file k.key: master key must be 32 bytes")
    monkeypatch.setenv("LEDGER_MASTER_KEY", "bad")
    assert ledger_main(["migrate"]) == 2
    assert said(capsys).startswith("ledger: LEDGER_MASTER_KEY: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]


def test_ledger_project_does_not_start_a_new_ledger_on_a_typo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved from tests/e2e/test_slips.py."""
    monkeypatch.chdir(tmp_path)
    assert ledger_main(["project", "--db", "sqlite:///typo.db", "--once"]) == 1
    assert (
        said(capsys) == "ledger: no ledger at typo.db (check --db or LEDGER_DB; the server creates it on first start)"
    )
    assert list(tmp_path.iterdir()) == []


def test_migrate_on_a_postgres_refusing_connections_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved from tests/e2e/test_slips.py (test_postgres_refusing_connections_is_one_line: ``migrate``)."""
    monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY)
    assert ledger_main(["migrate", "--db", f"postgresql://ledger:secret@127.0.0.1:{free_port()}/ledger"]) == 1
    line = said(capsys)
    assert line.startswith("ledger: cannot use the PostgreSQL store") and "refused" in line, line


def test_scripts_read_ledger_db_and_ledger_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved from tests/e2e/test_slips.py."""
    monkeypatch.setenv("LEDGER_DB", f"sqlite:///{tmp_path}/elsewhere.db")
    assert verify_ledger.main([]) == 1
    assert "elsewhere.db" in said(capsys)
    port = free_port()
    monkeypatch.setenv("LEDGER_TARGET", f"127.0.0.1:{port}")
    source = tmp_path / "q.csv"
    source.write_text("number,since_date\n+8613800138000,2026-01-05\n")
    assert recycling_check.main([str(source), "-o", str(tmp_path / "out.csv"), "--no-progress"]) == 1
    line = said(capsys)
    assert "no ledger server answers" in line and str(port) in line and "--target" in line, line
