"""The offline verifier and the export read both stores through the shared log reader, read-only, and
agree with the server's own verification."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ledger.application.commands import DisconnectNumber, SuspendNumber
from ledger.application.pipeline import execute
from ledger.application.verification import verify_integrity
from ledger.config import StoreConfig
from scripts import export_history, verify_export, verify_ledger
from tests.conftest import number
from tests.conftest import onboard_app as onboard


def url_of(store: StoreConfig) -> str:
    if store.kind == "sqlite":
        return f"sqlite:///{store.sqlite_path}"
    pg = store.postgres
    return f"postgresql://{pg['user']}:{pg['password']}@{pg['host']}:{pg['port']}/{pg['dbname']}"


def test_the_log_reader_of_a_recorder_reads_the_chain(store_app) -> None:
    from ledger.adapters import log_reader

    onboard(store_app, number(1), 1)
    head = store_app.reader.max_position()
    reader = log_reader(store_app.recorder)
    assert reader.max_position() == head
    assert reader.chain_hashes([head]) == {head: bytes.fromhex(verify_integrity(store_app, None).head_digest)}


def test_verify_and_export_offline_on_each_store(store_app, store_settings) -> None:
    app, db = store_app, url_of(store_settings.store)
    onboard(app, number(1), 1)
    onboard(app, number(2), 2)
    execute(app, SuspendNumber(number=number(1), reason="FRAUD", note=""), request_id="s", actor="t")
    execute(app, DisconnectNumber(number=number(1), reason="FRAUD"), request_id="d", actor="t")
    online = verify_integrity(app, None)
    offline = verify_ledger.verify(db)
    assert offline.ok and (offline.head_position, offline.head_digest) == (online.head_position, online.head_digest)
    assert verify_ledger.verify(db, number(1)) == verify_integrity(app, number(1))
    out = io.BytesIO()
    count = export_history.export(db, out, number=number(1))
    assert count == 4 + 2  # the number (provisioned, activated, suspended, disconnected), its holder
    ok, message = verify_export.verify(out.getvalue().splitlines())
    assert ok, message


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_offline_tools_on_a_database_without_a_ledger_say_so_in_one_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        (tmp_path / "other.db").write_bytes(b"")  # an existing file that holds no ledger
        db = f"sqlite:///{tmp_path}/other.db"
    else:
        from tests.pgserver import new_database

        db = new_database(request.getfixturevalue("pg_admin_url"))
    out = tmp_path / "e.jsonl"
    assert verify_ledger.main(["--db", db]) == 1
    assert export_history.main(["--db", db, "--number", number(1), "-o", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["verify_ledger", "export_history"], lines
    assert all("--db" in line for line in lines), lines
    assert not out.exists() and not out.with_name("e.jsonl.partial").exists()


def test_a_policy_typo_given_to_a_script_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Moved from tests/e2e/test_slips.py: the store exists, the policy file is refused before it is read."""
    from ledger.__main__ import main as ledger_main
    from scripts import compliance_report

    db = f"sqlite:///{tmp_path}/ledger.db"
    assert ledger_main(["migrate", "--db", db]) == 0
    capsys.readouterr()
    policy = tmp_path / "policy.toml"
    policy.write_text("quarantine_dayz = 3\n")
    assert compliance_report.main(["--db", db, "--policy", str(policy), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.strip() == "compliance_report: unknown policy keys: quarantine_dayz"
    assert compliance_report.main(["--db", db, "--policy", "nope.toml"]) == 2
    assert "cannot read policy file nope.toml" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
