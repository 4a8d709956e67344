"""recycling_check writes what it always wrote: the same columns and values, byte for byte, in the input's
order; malformed rows reported with their line and skipped; a number the server refuses (one a cheap local
check lets through) never fails the other rows of its batch."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import recycling_check
from tests.conftest import number

# Good rows, malformed rows (bad number, bad date, a date after today, an empty number), numbers only the
# full check refuses (a country code that does not exist, too short, a date that is not on the calendar),
# a number written with separators, unknown numbers, a provisioned-only number, a changed number with
# clearance pending, a ported-out number, fields that need quoting, rows longer and shorter than the header.
SOURCE = (
    "number,since_date,customer\n"
    "{n1},2026-01-05,alice\n"
    "not-a-number,2026-01-05,bob\n"
    "{n2},2026-01-05,carol\n"
    "{n1},05/01/2026,dave\n"
    "{n3},2026-01-05,erin\n"
    "{n1},2026-01-04,frank\n"
    '{n4},2026-01-05,"smith, grace"\n'
    "+99912345678,2026-01-05,heidi\n"
    "{n5},2026-01-05,ivan\n"
    "{n4},2999-01-01,judy\n"
    "+8612345,2026-01-05,mallory\n"
    "{n1},2026-02-30,niaj\n"
    "+86 138 0000 0004,2026-01-05,olivia\n"
    ",2026-01-05,peggy\n"
    "{n4},2026-01-06,rupert\n"
    "{n5},2026-01-06,sybil\n"
    "{n2},2026-01-06,trent\n"
    '{n1},2026-01-05,"say ""hi"""\n'
    '{n1},2026-01-05,"two\nlines"\n'
    "{n3},2026-01-05,extra,field\n"
    "{n3},2026-01-05\n"
)

# Written by the script before its rewrite for speed (at 28b749a), run once on SOURCE; "{today}" is the
# date the script runs.
EXPECTED_CSV = (
    b"number,since_date,customer,status,phone_number_changed,clearance,outstanding_holders,last_disconnected_at,no_data_reason,ported_out_at\r\n"
    b"+8613800000001,2026-01-05,alice,NOT_CHANGED,false,NOT_APPLICABLE,,,,\r\n"
    b"+8613800000002,2026-01-05,carol,CHANGED,true,NOT_APPLICABLE,,,,\r\n"
    b"+8613800000003,2026-01-05,erin,NO_DATA,false,NOT_APPLICABLE,,,UNKNOWN_NUMBER,\r\n"
    b"+8613800000001,2026-01-04,frank,NO_DATA,false,NOT_APPLICABLE,,,RECORDS_BEGIN_LATER,\r\n"
    b"+8613800000004,2026-01-05,"
    b'"smith, grace",CHANGED,true,PENDING,billing;voicemail,2026-01-06T11:00:00+00:00,,\r\n'
    b"+8613800000005,2026-01-05,ivan,NO_DATA,false,NOT_APPLICABLE,,,PORTED_OUT,2026-01-06T11:00:00+00:00\r\n"
    b"+86 138 0000 0004,2026-01-05,olivia,CHANGED,true,PENDING,billing;voicemail,2026-01-06T11:00:00+00:00,,\r\n"
    b"+8613800000004,2026-01-06,rupert,CHANGED,true,PENDING,billing;voicemail,2026-01-06T11:00:00+00:00,,\r\n"
    b"+8613800000005,2026-01-06,sybil,NO_DATA,false,NOT_APPLICABLE,,,PORTED_OUT,2026-01-06T11:00:00+00:00\r\n"
    b"+8613800000002,2026-01-06,trent,CHANGED,true,NOT_APPLICABLE,,,,\r\n"
    b'+8613800000001,2026-01-05,"say ""hi""",NOT_CHANGED,false,NOT_APPLICABLE,,,,\r\n'
    b'+8613800000001,2026-01-05,"two\n'
    b'lines",NOT_CHANGED,false,NOT_APPLICABLE,,,,\r\n'
    b"+8613800000003,2026-01-05,extra,NO_DATA,false,NOT_APPLICABLE,,,UNKNOWN_NUMBER,\r\n"
    b"+8613800000003,2026-01-05,,NO_DATA,false,NOT_APPLICABLE,,,UNKNOWN_NUMBER,\r\n"
)
EXPECTED_JSONL = (
    b'{"number":"+8613800000001","since_date":"2026-01-05","customer":"alice","status":"NOT_CHANGED",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000002","since_date":"2026-01-05","customer":"carol","status":"CHANGED",'
    b'"phone_number_changed":true,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000003","since_date":"2026-01-05","customer":"erin","status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"UNKNOWN_NUMBER","ported_out_at":""}\n'
    b'{"number":"+8613800000001","since_date":"2026-01-04","customer":"frank","status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"RECORDS_BEGIN_LATER","ported_out_at":""}\n'
    b'{"number":"+8613800000004","since_date":"2026-01-05","customer":"smith, grace",'
    b'"status":"CHANGED","phone_number_changed":true,"clearance":"PENDING",'
    b'"outstanding_holders":["billing","voicemail"],"last_disconnected_at":"2026-01-06T11:00:00+00:00",'
    b'"no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000005","since_date":"2026-01-05","customer":"ivan","status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"PORTED_OUT",'
    b'"ported_out_at":"2026-01-06T11:00:00+00:00"}\n'
    b'{"number":"+86 138 0000 0004","since_date":"2026-01-05","customer":"olivia","status":"CHANGED",'
    b'"phone_number_changed":true,"clearance":"PENDING","outstanding_holders":["billing","voicemail"],'
    b'"last_disconnected_at":"2026-01-06T11:00:00+00:00","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000004","since_date":"2026-01-06","customer":"rupert","status":"CHANGED",'
    b'"phone_number_changed":true,"clearance":"PENDING","outstanding_holders":["billing","voicemail"],'
    b'"last_disconnected_at":"2026-01-06T11:00:00+00:00","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000005","since_date":"2026-01-06","customer":"sybil","status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"PORTED_OUT",'
    b'"ported_out_at":"2026-01-06T11:00:00+00:00"}\n'
    b'{"number":"+8613800000002","since_date":"2026-01-06","customer":"trent","status":"CHANGED",'
    b'"phone_number_changed":true,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000001","since_date":"2026-01-05","customer":"say \\"hi\\"",'
    b'"status":"NOT_CHANGED","phone_number_changed":false,"clearance":"NOT_APPLICABLE",'
    b'"outstanding_holders":[],"last_disconnected_at":"","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000001","since_date":"2026-01-05","customer":"two\\nlines",'
    b'"status":"NOT_CHANGED","phone_number_changed":false,"clearance":"NOT_APPLICABLE",'
    b'"outstanding_holders":[],"last_disconnected_at":"","no_data_reason":"","ported_out_at":""}\n'
    b'{"number":"+8613800000003","since_date":"2026-01-05","customer":"extra","status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"UNKNOWN_NUMBER","ported_out_at":""}\n'
    b'{"number":"+8613800000003","since_date":"2026-01-05","customer":null,"status":"NO_DATA",'
    b'"phone_number_changed":false,"clearance":"NOT_APPLICABLE","outstanding_holders":[],'
    b'"last_disconnected_at":"","no_data_reason":"UNKNOWN_NUMBER","ported_out_at":""}\n'
)
EXPECTED_SKIPPED_CSV = [
    "line 3: skipped: number must be in E.164 form: '+', country code and digits",
    "line 5: skipped: date must be YYYY-MM-DD",
    "line 9: skipped: number is not a valid E.164 number ((0) Could not interpret numbers after plus-sign.)",
    "line 11: skipped: since_date 2999-01-01 is after today ({today})",
    "line 12: skipped: number is not a valid E.164 number",
    "line 13: skipped: date is not a real calendar date",
    "line 15: skipped: number is required (E.164, for example +8613800138000)",
    "skipped 7 malformed rows",
]
# The same rows as JSON lines: no header, so each line number is one less.
EXPECTED_SKIPPED_JSONL = [
    "line 2: skipped: number must be in E.164 form: '+', country code and digits",
    "line 4: skipped: date must be YYYY-MM-DD",
    "line 8: skipped: number is not a valid E.164 number ((0) Could not interpret numbers after plus-sign.)",
    "line 10: skipped: since_date 2999-01-01 is after today ({today})",
    "line 11: skipped: number is not a valid E.164 number",
    "line 12: skipped: date is not a real calendar date",
    "line 14: skipped: number is required (E.164, for example +8613800138000)",
    "skipped 7 malformed rows",
]


def _ledger(stubs, clock) -> None:
    stubs.onboard(number(1), seq=1)
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p2", numbers=[number(2)]))
    _, tenure, _ = stubs.onboard(number(4), seq=4)
    stubs.onboard(number(5), seq=5)
    clock.advance(days=1, hours=2)
    stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d4", number=number(4), reason=1))
    stubs.lifecycle.ConfirmDataCleared(
        lpb.ConfirmDataClearedRequest(
            request_id="c4", number=number(4), tenure_id=tenure, holder="crm", evidence_ref="x"
        )
    )
    stubs.lifecycle.PortOutNumber(
        lpb.PortOutNumberRequest(request_id="po5", number=number(5), recipient_operator="other-mno")
    )


def _source(tmp_path: Path, suffix: str) -> Path:
    source = tmp_path / f"in.{suffix}"
    text = SOURCE.format(n1=number(1), n2=number(2), n3=number(3), n4=number(4), n5=number(5))
    if suffix == "jsonl":
        records = ({k: v for k, v in r.items() if k is not None} for r in csv.DictReader(io.StringIO(text)))
        text = "".join(orjson.dumps(r).decode() + "\n" for r in records)
    source.write_text(text)
    return source


def _run(target: str, source: Path, capsys, batch: int) -> tuple[bytes, list[str]]:
    out = source.with_name(f"out{source.suffix}")
    args = [str(source), "-o", str(out), "--target", target, "--no-progress", "--batch-size", str(batch)]
    assert recycling_check.main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(err)
    return out.read_bytes(), [e for e in err if e.startswith(("line ", "skipped "))]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_the_output_is_byte_for_byte_what_it_was(server, clock, tmp_path: Path, capsys, suffix: str) -> None:
    stubs, app = server
    _ledger(stubs, clock)
    assert stubs.projector.wait_for(app.reader.max_position(), 10)
    today = datetime.now(UTC).date().isoformat()
    expected_out = EXPECTED_CSV if suffix == "csv" else EXPECTED_JSONL
    skipped = EXPECTED_SKIPPED_CSV if suffix == "csv" else EXPECTED_SKIPPED_JSONL
    expected_err = [e.format(today=today) for e in skipped]
    source = _source(tmp_path, suffix)
    # One batch, batches that split the refused rows from their neighbours, one row per batch.
    for batch in (1000, 3, 1):
        out, err = _run(stubs.target, source, capsys, batch)
        assert out == expected_out, batch
        assert err == expected_err, batch


def test_numbers_the_server_refuses_do_not_fail_their_batch(server, clock, tmp_path: Path, capsys) -> None:
    stubs, app = server
    stubs.onboard(number(1), seq=1)
    assert stubs.projector.wait_for(app.reader.max_position(), 10)
    # Each refused row passes a cheap shape check (so it reaches the server inside a batch of good rows)
    # and fails the full one; and the server's today (the ledger's clock) is before the script's.
    good = [f"{number(1)},2026-01-05,{i}\n" for i in range(2000)]
    refused = {
        7: "+8612345,2026-01-05,short\n",
        700: "+99912345678,2026-01-05,no-such-country\n",
        1500: f"{number(1)},2026-02-30,no-such-day\n",
    }
    for at, row in sorted(refused.items()):
        good.insert(at, row)
    source = tmp_path / "in.csv"
    source.write_text("number,since_date,ref\n" + "".join(good))
    out = tmp_path / "out.csv"
    args = [str(source), "-o", str(out), "--target", stubs.target, "--no-progress"]
    assert recycling_check.main(args) == 1
    err = capsys.readouterr().err
    for at in refused:
        assert f"line {at + 2}: skipped: " in err, err
    assert "skipped 3 malformed rows" in err and "checked 2000 numbers" in err
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["ref"] for r in rows] == [str(i) for i in range(2000)]
    assert {r["status"] for r in rows} == {"NOT_CHANGED"}
