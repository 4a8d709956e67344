"""Answers never come from a view row edited behind the server's back: a status, a clearance and a SIM row
edited, and rows deleted, in the views database while the server runs. The affected numbers answer
UNAVAILABLE READ_MODEL_MISMATCH (in a batch, that entry alone), others answer, the log names no number, and
``ledger audit-views --repair`` heals them."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import grpc
import orjson
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.config import Settings
from ledger.projection_worker import audit_views
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number
from tests.views import serving

STORES = ("sqlite", "postgres")
SINCE = "2026-01-05"


class _Views:
    """A connection to the views database, as someone who can write it (and holds no key) has."""

    def __init__(self, settings: Settings) -> None:
        if settings.store.kind == "sqlite":
            self.conn: Any = sqlite3.connect(settings.store.views_path(), isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(settings.store.conninfo(), autocommit=True)
            self.conn.execute('SET search_path TO "ledger_views"')
        self.pg = settings.store.kind != "sqlite"

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)

    def close(self) -> None:
        self.conn.close()


def _reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return error.code(), info.reason
    return error.code(), ""


def _refused(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    return _reason(caught.value)


def _check(stubs: Any, msisdn: str) -> Any:
    return stubs.recycling.CheckNumber(rpb.CheckNumberRequest(number=msisdn, since_date=SINCE), timeout=10).result


def _batch(stubs: Any, numbers: list[str]) -> list[Any]:
    queries = [ledger_pb2.CheckQuery(number=n, since_date=SINCE) for n in numbers]
    (response,) = list(stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10))
    return list(response.results)


def _swaps(stubs: Any, numbers: list[str]) -> list[Any]:
    queries = [rpb.SimSwapQuery(number=n, max_age_hours=240) for n in numbers]
    (response,) = list(
        stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=queries)]), timeout=10)
    )
    return list(response.results)


def _answers(stubs: Any) -> tuple[Any, ...]:
    """Every answer the test compares before the edits and after the repair."""
    numbers = [number(i) for i in range(1, 6)]
    checks = [_check(stubs, n) for n in numbers]
    return (
        [(c.status, c.clearance, tuple(c.outstanding_holders), c.last_disconnected_at.seconds) for c in checks],
        [(r.status, r.clearance, r.no_data_reason) for r in _batch(stubs, numbers)],
        [stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=n)) for n in numbers],
        [(r.answer, r.swapped) for r in _swaps(stubs, numbers)],
    )


def test_edited_and_deleted_view_rows_answer_mismatch_for_their_numbers_and_repair_heals(
    server, settings: Settings, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stubs, app = server
    for i in (1, 2, 3):  # disconnected: recycled since the date, clearance pending
        stubs.onboard(number(i), i)
        stubs.lifecycle.DisconnectNumber(
            lpb.DisconnectNumberRequest(
                request_id=stubs.rid(), number=number(i), reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
            )
        )
    for i in (4, 5):  # held
        stubs.onboard(number(i), i)
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    before = _answers(stubs)
    assert before[0][0][0] == ledger_pb2.CHECK_STATUS_CHANGED and before[0][3][0] == ledger_pb2.CHECK_STATUS_NOT_CHANGED
    assert before[0][1][1] == ledger_pb2.CLEARANCE_PENDING

    views = _Views(settings)
    cur = serving(views)
    # A status: the disconnected number 1 made to look continuously held.
    cur.execute(
        "UPDATE rm_checks SET closed='[]', last_disconnected_us=NULL, current_activated_us=1 WHERE number=?",
        (number(1),),
    )
    cur.execute("UPDATE rm_numbers SET status='ACTIVE' WHERE number=?", (number(1),))
    # A clearance: number 2's pending clearance made to read as cleared.
    closed = orjson.loads(cur.execute("SELECT closed FROM rm_checks WHERE number=?", (number(2),)).fetchone()[0])
    cleared = orjson.dumps([[end, "CLEARED", []] for end, _, _ in closed]).decode()
    cur.execute("UPDATE rm_checks SET closed=? WHERE number=?", (cleared, number(2)))
    cur.execute(
        "UPDATE rm_tenures SET outstanding_holders='[]' WHERE number_id=(SELECT number_id FROM rm_numbers "
        "WHERE number=?)",
        (number(2),),
    )
    # Deleted rows: number 3's check row and SIM row; a SIM row edited: number 5's activation forgotten.
    cur.execute("DELETE FROM rm_checks WHERE number=?", (number(3),))
    cur.execute("DELETE FROM rm_swap_numbers WHERE number=?", (number(3),))
    cur.execute("UPDATE rm_swap_numbers SET activated_us=NULL WHERE number=?", (number(5),))
    views.close()

    caplog.set_level(logging.ERROR, logger="projections.queries")
    mismatch = (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_MISMATCH")
    check, clearance = stubs.recycling.CheckNumber, stubs.recycling.GetClearance
    simswap, latest = stubs.recycling.CheckSimSwap, stubs.recycling.GetSimSwap
    for i in (1, 2, 3):
        assert _refused(check, rpb.CheckNumberRequest(number=number(i), since_date=SINCE)) == mismatch, i
    for i in (1, 2):
        assert _refused(clearance, rpb.GetClearanceRequest(number=number(i))) == mismatch, i
    for i in (3, 5):
        assert _refused(simswap, rpb.CheckSimSwapRequest(number=number(i), max_age_hours=240)) == mismatch, i
        assert _refused(latest, rpb.GetSimSwapRequest(number=number(i))) == mismatch, i
    # Other numbers keep answering, alone and in the same batch as the refused ones.
    assert _check(stubs, number(4)).status == ledger_pb2.CHECK_STATUS_NOT_CHANGED
    results = _batch(stubs, [number(i) for i in range(1, 6)] + [number(99)])
    assert [(r.status, r.no_data_reason) for r in results[:3]] == [
        (ledger_pb2.CHECK_STATUS_NO_DATA, ledger_pb2.NO_DATA_REASON_READ_MODEL_MISMATCH)
    ] * 3
    assert [(r.status, r.clearance, r.no_data_reason) for r in results[3:5]] == before[1][3:5]
    assert (results[5].status, results[5].no_data_reason) == (
        ledger_pb2.CHECK_STATUS_NO_DATA,
        ledger_pb2.NO_DATA_REASON_UNKNOWN_NUMBER,
    )
    answers = [r.answer for r in _swaps(stubs, [number(i) for i in range(1, 6)])]
    assert answers == [rpb.SIM_SWAP_ANSWER_ANSWERED] * 2 + [rpb.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH] + [
        rpb.SIM_SWAP_ANSWER_ANSWERED,
        rpb.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH,
    ]
    assert stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=number(3))).tenures  # its rows are whole
    # Logged, with the table, never the number.
    logged = [r.getMessage() for r in caplog.records if "READ_MODEL_MISMATCH" in r.getMessage()]
    assert any("rm_checks" in m and "fails its keyed hash" in m for m in logged)
    assert any("rm_checks" in m and "is missing" in m for m in logged)
    assert any("rm_swap_numbers" in m for m in logged) and any("rm_tenures" in m for m in logged)
    assert not [m for m in logged if any(number(i) in m or number(i)[1:] in m for i in range(1, 6))]

    assert audit_views(settings, repair=True) == 0
    out = capsys.readouterr().out
    assert "4 differ" in out and "4 repaired" in out, out
    assert audit_views(settings) == 0
    assert _answers(stubs) == before
