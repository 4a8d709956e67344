"""disconnection_report against a live server: two consecutive months with a back-dated disconnection
recorded between them, numbers ported in reported, each jurisdiction in its own file, each file
verified against the ledger by inclusion proofs, a tampered file refused, and a month redrawn byte for
byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import disconnection_report
from tests.conftest import number

SUBSCRIBER_REQUEST = 1
US = "+12015550123"


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def disconnect(stubs, msisdn: str, occurred_at: datetime | None = None) -> None:
    request = lpb.DisconnectNumberRequest(request_id=stubs.rid(), number=msisdn, reason=SUBSCRIBER_REQUEST)
    if occurred_at is not None:
        request.occurred_at.FromDatetime(occurred_at)
    stubs.lifecycle.DisconnectNumber(request)


def run(stubs, tmp_path: Path, month: str, name: str) -> Path:
    out = tmp_path / name
    code = disconnection_report.main(
        ["--jurisdiction", "+86", "--month", month, "-o", str(out), "--target", stubs.target]
    )
    assert code == 0
    return out


def rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def verify(stubs, path: Path) -> int:
    return disconnection_report.main(["--verify", str(path), "--target", stubs.target])


@pytest.mark.timeout(180)
def test_two_months_with_a_back_dated_disconnection_between_them(server, clock, tmp_path: Path, capsys) -> None:
    stubs, _ = server
    for i in range(1, 7):
        stubs.onboard(number(i), seq=i)
    # A number ported in from another operator, activated and disconnected here: reported.
    stubs.lifecycle.PortInNumber(lpb.PortInNumberRequest(request_id=stubs.rid(), number=number(7), donor_operator="d"))
    stubs.onboard(number(7), seq=7)
    stubs.onboard(US, seq=8)  # another jurisdiction's number: in its own report only
    clock.advance(days=5)  # 2026-01-10
    disconnect(stubs, number(1))
    disconnect(stubs, number(7))
    disconnect(stubs, US)
    # Port-outs, returns and suspensions are no permanent disconnections: tests/unit/test_lifecycle_requests.py.
    clock.advance(days=2)
    # Disconnected in February but recorded before January's report is drawn: February's.
    clock.advance(days=23)  # 2026-02-04
    disconnect(stubs, number(4), at("2026-02-02T10:00:00"))

    january = run(stubs, tmp_path, "2026-01", "jan.csv")
    assert rows(january) == ["number,disconnection_date", f"{number(1)},2026-01-10", f"{number(7)},2026-01-10"]
    manifest = json.loads((tmp_path / "jan.csv.manifest.json").read_text())
    assert manifest["counts"] == {
        "rows": 2,
        "disconnections": 2,
        "superseded": 0,
        "dated_before_month": 0,
        "carried_to_next": 1,
    }
    assert manifest["positions"]["from"] == 1 and manifest["positions"]["carry_from"] > 0
    assert manifest["signed_head"]["size"] == manifest["positions"]["to"]

    # Recorded after January's report, but back-dated into January: it goes in February's file.
    disconnect(stubs, number(5), at("2026-01-20T00:00:00"))
    clock.advance(days=1)
    disconnect(stubs, number(6), at("2026-02-04T12:00:00"))
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(8)]))
    clock.advance(days=30)  # 2026-03-07
    february = run(stubs, tmp_path, "2026-02", "feb.csv")
    assert rows(february) == [
        "number,disconnection_date",
        f"{number(4)},2026-02-02",
        f"{number(5)},2026-01-20",
        f"{number(6)},2026-02-04",
    ]
    assert not set(rows(january)[1:]) & set(rows(february)[1:])
    counts = json.loads((tmp_path / "feb.csv.manifest.json").read_text())["counts"]
    assert counts["dated_before_month"] == 1 and counts["rows"] == 3
    reports = stubs.history.ListDisconnectionReports(hpb.ListDisconnectionReportsRequest(jurisdiction="+86")).reports
    assert [(r.month, r.rows) for r in reports] == [("2026-01", 2), ("2026-02", 3)]
    us_report = disconnection_report.main(
        ["--jurisdiction", "+1", "--month", "2026-02", "-o", str(tmp_path / "us.csv"), "--target", stubs.target]
    )
    assert us_report == 0 and rows(tmp_path / "us.csv") == ["number,disconnection_date", f"{US},2026-01-10"]

    capsys.readouterr()
    assert verify(stubs, january) == 0
    assert verify(stubs, february) == 0
    assert "agrees with the ledger" in capsys.readouterr().out

    # Redrawing a month gives the same file and records nothing new.
    assert run(stubs, tmp_path, "2026-01", "jan-again.csv").read_bytes() == january.read_bytes()
    assert run(stubs, tmp_path, "2026-02", "feb-again.csv").read_bytes() == february.read_bytes()
    again = stubs.history.ListDisconnectionReports(hpb.ListDisconnectionReportsRequest(jurisdiction="+86")).reports
    assert list(again) == list(reports)


def test_a_tampered_report_is_refused(server, clock, tmp_path: Path, capsys) -> None:
    stubs, _ = server
    for i in range(1, 3):
        stubs.onboard(number(i), seq=i)
    clock.advance(days=3)
    disconnect(stubs, number(1))
    disconnect(stubs, number(2))
    clock.advance(days=30)
    report = run(stubs, tmp_path, "2026-01", "jan.csv")
    assert verify(stubs, report) == 0
    original = report.read_text()

    # A row's date changed: the file no longer matches its manifest nor the ledger.
    report.write_text(original.replace("2026-01-08", "2026-01-09", 1))
    capsys.readouterr()
    assert verify(stubs, report) == 1
    assert "SHA-256" in capsys.readouterr().err

    # A row removed and the manifest's digest forged to match: the ledger's record refuses it.
    forged = "".join(original.splitlines(keepends=True)[:-1])
    report.write_text(forged)
    path = tmp_path / "jan.csv.manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sha256"] = disconnection_report.hashlib.sha256(forged.encode()).hexdigest()
    path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert verify(stubs, report) == 1
    err = capsys.readouterr().err
    assert "the ledger records the 2026-01 report" in err and "redraws" in err


def test_months_are_issued_in_order_and_not_before_they_begin(server, clock, tmp_path: Path, capsys) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    clock.advance(days=40)  # 2026-02-14
    run(stubs, tmp_path, "2026-02", "feb.csv")
    capsys.readouterr()
    args = ["--jurisdiction", "+86", "--target", stubs.target, "-o", str(tmp_path / "x.csv")]
    assert disconnection_report.main([*args, "--month", "2026-01"]) == 1
    assert "reports are issued in month order" in capsys.readouterr().err
    # The ledger's time is when the head the report is drawn from was signed (the wall clock).
    future = (datetime.now(UTC) + timedelta(days=62)).strftime("%Y-%m")
    assert disconnection_report.main([*args, "--month", future]) == 2
    assert "has not begun" in capsys.readouterr().err
    assert disconnection_report.main([*args, "--month", "2026-13"]) == 2
    assert disconnection_report.main(["--jurisdiction", "86", "--month", "2026-01", "--target", stubs.target]) == 2
    assert not (tmp_path / "x.csv").exists()
