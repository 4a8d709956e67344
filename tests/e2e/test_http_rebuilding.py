"""While a read model cannot serve (a release changed its schema and its new generation is being built),
HTTP checks answer 503 with Retry-After, never a guess; once built, the same answers as before."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from scripts import generate_dataset
from scripts.dataset import identifiers as synthetic
from tests.e2e.test_read_model_generations import _commit_version_change, _positions, _serving_version
from tests.procs import Serve, free_port, ledger_head, project, views_query

STORES = ("sqlite", "postgres")
NUMBERS = 300
NR = "/number-recycling/v0.2/check"


@pytest.fixture
def db(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_kind == "postgres":
        from tests.pgserver import new_database

        return new_database(request.getfixturevalue("pg_admin_url"))
    return f"sqlite:///{tmp_path}/ledger.db"


def _bodies() -> list[dict[str, str]]:
    return [{"phoneNumber": synthetic.msisdn(i), "specifiedDate": "2024-06-15"} for i in range(0, NUMBERS + 30, 3)]


def _answers(client: httpx.Client) -> list[tuple[int, object]]:
    out = []
    for body in _bodies():
        r = client.post(NR, json=body)
        out.append((r.status_code, r.json() if r.status_code == 200 else r.json()["code"]))
    return out


def test_checks_answer_503_while_the_read_model_cannot_serve(db: str, tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    log = tmp_path / "server.log"
    server = Serve(db, extra=("--http", http), log=log)
    generate_dataset.main(
        ["--target", server.target, "--numbers", str(NUMBERS), "--seed", "9", "--end", "2026-01-01", "--no-progress"]
    )
    head = ledger_head(db)
    deadline = time.monotonic() + 120
    while min(_positions(db).values(), default=0) < head:
        assert time.monotonic() < deadline, "the read models did not catch up"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://{http}", timeout=30) as client:
        baseline = _answers(client)
    assert server.stop() == 0
    assert {s for s, _ in baseline} >= {200, 404}
    # As after an upgrade that changed the numbers view's schema: no generation of it can serve this release.
    views_query(db, "UPDATE rm_generations SET version = version - 1 WHERE view = 'numbers'")
    _commit_version_change(db)
    server = Serve(db, extra=("--http", http, "--no-projections"), log=log)
    counts: Counter[str] = Counter()
    wrong: list[object] = []
    stop = threading.Event()
    try:
        with httpx.Client(base_url=f"http://{http}", timeout=30) as client:
            r = client.post(NR, json=_bodies()[0])
            assert (r.status_code, r.json()["code"]) == (503, "UNAVAILABLE") and int(r.headers["retry-after"]) >= 1
            assert "READ_MODEL_REBUILDING" in r.json()["message"]
            r = client.post(
                "/ledger.v1.RecyclingService/CheckNumber",
                json={"number": synthetic.msisdn(0), "sinceDate": "2024-06-15"},
            )
            assert (r.status_code, r.json()["code"]) == (503, "unavailable") and r.headers["retry-after"]
            assert r.json()["details"][0]["debug"]["reason"] == "READ_MODEL_REBUILDING"

            def check() -> None:  # every answer while the generation is built: the baseline's, or 503
                while not stop.is_set():
                    for body, expected in zip(_bodies(), baseline, strict=True):
                        r = client.post(NR, json=body)
                        if r.status_code == 503:
                            counts["503"] += 1
                            if "retry-after" not in r.headers:
                                wrong.append(("no Retry-After", body))
                            continue
                        counts["answered"] += 1
                        got = (r.status_code, r.json() if r.status_code == 200 else r.json()["code"])
                        if got != expected:
                            wrong.append((body, got, expected))

            checker = threading.Thread(target=check, daemon=True)
            checker.start()
            project(db, "--prepare")  # builds this release's generation beside the old one, then exits
            assert _serving_version(db)
            deadline = time.monotonic() + 60
            while not counts["answered"]:
                assert time.monotonic() < deadline, counts
                time.sleep(0.05)
            stop.set()
            checker.join(60)
            assert _answers(client) == baseline
    finally:
        stop.set()
        assert server.stop() == 0
    assert wrong == [] and counts["503"] >= 1, (wrong[:5], counts)
    assert "Traceback" not in log.read_text()
