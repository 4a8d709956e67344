"""Checks answered from a real hot standby (``pg_basebackup -R -X stream``): equal to the primary's,
UNAVAILABLE while the standby is down, back without a restart when it returns."""

from __future__ import annotations

import time
from datetime import date

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import generate_dataset
from scripts.dataset import identifiers as synthetic
from tests.pgserver import Cluster, new_database
from tests.procs import Serve, ledger_head

DATES = ("2023-01-01", "2025-01-01", "2026-01-01")


@pytest.fixture
def primary():
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.stop()


def _answers(server: Serve, count: int) -> tuple[int, list[tuple]]:
    queries = [ledger_pb2.CheckQuery(number=synthetic.msisdn(i), since_date=d) for i in range(count) for d in DATES]
    (response,) = list(server.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=20))
    results = [(r.number, r.status, r.clearance, tuple(r.outstanding_holders)) for r in response.results]
    return min(r.as_of_position for r in response.results), results


def test_checks_from_a_streaming_replica(primary: Cluster) -> None:
    started = time.monotonic()
    db = new_database(primary.admin_url())
    main = Serve(db)
    generate_dataset.main(
        ["--target", main.target, "--numbers", "150", "--seed", "8", "--end", "2026-01-01", "--no-progress"]
    )
    print(f"dataset {time.monotonic() - started:.1f}s")
    standby = primary.replica()
    print(f"replica {time.monotonic() - started:.1f}s")
    try:
        replica_db = standby.url(db.rsplit("/", 1)[1])
        reader = Serve(db, extra=("--read-db", replica_db, "--no-projections"))
        head = ledger_head(db)
        one = rpb.CheckNumberRequest(number=synthetic.msisdn(0), since_date="2026-01-01", min_position=head)
        assert reader.recycling.CheckNumber(one, timeout=15).result.as_of_position >= head
        at, from_replica = _answers(reader, 150)
        at_primary, from_primary = _answers(main, 150)
        assert at == at_primary == head and from_replica == from_primary
        assert {r[1] for r in from_replica} >= {ledger_pb2.CHECK_STATUS_CHANGED, ledger_pb2.CHECK_STATUS_NOT_CHANGED}

        # A write on the primary is seen through the replica once applied there (read your writes).
        position = main.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="late", numbers=["+8613812345678"])
        ).position
        late = rpb.CheckNumberRequest(
            number="+8613812345678", since_date=date.today().isoformat(), min_position=position
        )
        seen = reader.recycling.CheckNumber(late, timeout=15).result
        assert seen.as_of_position >= position and seen.status != ledger_pb2.CHECK_STATUS_NO_DATA

        standby.stop_server()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            reader.recycling.CheckNumber(rpb.CheckNumberRequest(number=synthetic.msisdn(1), since_date="2026-01-01"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() - started < 3
        status = rpc_status.from_call(caught.value)
        info = error_details_pb2.ErrorInfo()
        assert status is not None and status.details[0].Unpack(info) and info.reason == "STORE_UNAVAILABLE"
        assert _answers(main, 5)[1] == from_primary[:15]  # the primary's own checks go on

        standby.start_server()
        deadline = time.monotonic() + 30
        while True:  # back without a restart of the reader
            try:
                assert _answers(reader, 150)[1] == from_primary
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the replica's checks did not come back"
                time.sleep(0.2)
        assert reader.stop() == 0
    finally:
        standby.stop()
        assert main.stop() == 0
