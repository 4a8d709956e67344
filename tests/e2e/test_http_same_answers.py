"""One answer whatever the protocol: (number, date) pairs over a generated operator history, checked through
the CAMARA route, Connect JSON and gRPC BatchCheck of one ``ledger serve --http``, agree pair by pair."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format

from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import generate_dataset
from scripts.dataset import identifiers as synthetic
from tests.procs import Serve, free_port, ledger_head, views_query

STORES = ("sqlite", "postgres")
NUMBERS = 240  # and 10 numbers never provisioned: 250 numbers, 4 dates each
DATES = ("2023-01-01", "2024-06-15", "2025-03-01", "2025-11-20")


@pytest.fixture
def db(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_kind == "postgres":
        from tests.pgserver import new_database

        return new_database(request.getfixturevalue("pg_admin_url"))
    return f"sqlite:///{tmp_path}/ledger.db"


def _camara(result: ledger_pb2.CheckResult) -> tuple[int, object]:
    """What the CAMARA route must answer for a gRPC check result (DESIGN, Additions round 3)."""
    if result.status == ledger_pb2.CHECK_STATUS_CHANGED:
        return 200, {"phoneNumberRecycled": True}
    if result.status == ledger_pb2.CHECK_STATUS_NOT_CHANGED:
        return 200, {"phoneNumberRecycled": False}
    if result.no_data_reason == ledger_pb2.NO_DATA_REASON_RECORDS_BEGIN_LATER:
        return 400, "OUT_OF_RANGE"
    return 404, "IDENTIFIER_NOT_FOUND"  # unknown here, or ported out


def test_camara_connect_and_grpc_agree_pair_by_pair(db: str, tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    server = Serve(db, extra=("--http", http), log=tmp_path / "server.log")
    try:
        generate_dataset.main(
            ["--target", server.target, "--numbers", str(NUMBERS), "--seed", "25", "--end", "2026-01-01",
             "--no-progress"]
        )  # fmt: skip
        head = ledger_head(db)
        deadline = time.monotonic() + 120
        while min((int(p) for (p,) in views_query(db, "SELECT position FROM rm_generations WHERE state='ready'")),
                  default=0) < head:  # fmt: skip
            assert time.monotonic() < deadline, "the read models did not catch up"
            time.sleep(0.05)
        pairs = [(synthetic.msisdn(i), d) for i in range(NUMBERS + 10) for d in DATES]
        request = rpb.BatchCheckRequest(queries=[ledger_pb2.CheckQuery(number=n, since_date=d) for n, d in pairs])
        (batch,) = list(server.recycling.BatchCheck(iter([request]), timeout=60))
        assert len(batch.results) == len(pairs) == 1000

        def over_http(pair: tuple[str, str]) -> tuple[httpx.Response, httpx.Response]:
            number, day = pair
            camara = client.post("/number-recycling/v0.2/check", json={"phoneNumber": number, "specifiedDate": day})
            connect = client.post("/ledger.v1.RecyclingService/CheckNumber", json={"number": number, "sinceDate": day})
            return camara, connect

        with (
            httpx.Client(base_url=f"http://{http}", timeout=30, limits=httpx.Limits(max_connections=4)) as client,
            ThreadPoolExecutor(4) as pool,
        ):
            answers = list(pool.map(over_http, pairs))
    finally:
        assert server.stop() == 0
    seen = set()
    for (number, day), result, (camara, connect) in zip(pairs, batch.results, answers, strict=True):
        status, expected = _camara(result)
        got = camara.json() if status == 200 else camara.json()["code"]
        assert (camara.status_code, got) == (status, expected), (number, day, result)
        assert connect.status_code == 200
        by_connect = json_format.ParseDict(connect.json()["result"], ledger_pb2.CheckResult())
        for answer in (by_connect, result):  # positions move with the ledger's head; the answer does not
            answer.ClearField("as_of_position")
            answer.ClearField("head_position")
        assert by_connect == result, (number, day)
        seen.add((status, str(expected)))
    # Every kind of answer occurred: recycled, not recycled, unknown or ported out, and records beginning later.
    assert {s for s, _ in seen} >= {200, 404} and len(seen) >= 3, seen
