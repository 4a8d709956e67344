"""Batch jobs a new user runs in the first hour: recycling_check never hangs on a bad header, counts rows
not lines, stops cleanly on Ctrl-C leaving its output marked partial; the server does not log a client's
cancellation as an error; generate_dataset re-runs without ``--end``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import generate_dataset, recycling_check
from tests.conftest import number

ROOT = Path(__file__).resolve().parents[2]


def _script(args: list[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.recycling_check", *args],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("header", ["numero,fecha\n+8613800000001,2026-01-05\n", "", "number\n+8613800000001\n"])
def test_recycling_check_refuses_a_bad_header_at_once(server, tmp_path: Path, header: str) -> None:
    stubs, _ = server
    source = tmp_path / "in.csv"
    source.write_text(header)
    proc = _script([str(source), "-o", str(tmp_path / "out.csv"), "--target", stubs.target], tmp_path)
    try:
        _, err = proc.communicate(timeout=30)  # it used to wait forever
    finally:
        proc.kill()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("recycling_check: the CSV header") and "since_date" in line
    assert not (tmp_path / "out.csv").exists()


def test_recycling_check_refuses_a_file_that_is_not_text(server, tmp_path: Path, capsys) -> None:
    stubs, _ = server
    source = tmp_path / "in.csv"
    source.write_bytes(b"number,since_date\n" + b"\xff\xfe\x00garbage\n" * 3)
    out = tmp_path / "out.csv"
    assert recycling_check.main([str(source), "-o", str(out), "--target", stubs.target, "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("recycling_check: ") and "cannot be read as CSV text" in line
    assert not out.exists()


def test_recycling_check_progress_counts_rows_not_the_header(server, tmp_path: Path, capsys) -> None:
    stubs, _ = server
    source = tmp_path / "in.csv"
    source.write_text("number,since_date\n" + "".join(f"{number(i)},2026-01-05\n" for i in range(3)))
    out = tmp_path / "out.csv"
    assert recycling_check.main([str(source), "-o", str(out), "--target", stubs.target]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "/4" not in err, err
    assert out.is_file() and not (tmp_path / "out.csv.partial").exists()


@pytest.mark.timeout(120)
def test_ctrl_c_stops_cleanly_and_leaves_the_output_marked_partial(server, tmp_path: Path, caplog) -> None:
    stubs, _ = server
    out = tmp_path / "out.csv"
    proc = _script(
        ["-", "-o", str(out), "--target", stubs.target, "--batch-size", "5"], tmp_path, stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write("number,since_date\n" + "".join(f"{number(i)},2026-01-05\n" for i in range(10)))
    proc.stdin.flush()  # and keep it open: the job waits for more rows
    partial = tmp_path / "out.csv.partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not partial.exists() or len(partial.read_text().splitlines()) < 11):
        time.sleep(0.1)
    assert len(partial.read_text().splitlines()) == 11, "the answers so far are on disk while the job waits"
    with caplog.at_level(logging.INFO):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        time.sleep(0.5)  # the server notices the cancelled call
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == (
        f"recycling_check: interrupted after 10 rows; the rows answered so far are in {partial}"
    )
    assert not out.exists() and len(partial.read_text().splitlines()) == 11
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_server_does_not_log_a_cancelled_call_as_an_error(server, caplog) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    release = threading.Event()

    def requests():
        yield rpb.BatchCheckRequest(queries=[ledger_pb2.CheckQuery(number=number(1), since_date="2026-01-05")])
        release.wait(10)

    with caplog.at_level(logging.INFO):
        checks = stubs.recycling.BatchCheck(requests())
        next(checks)
        checks.cancel()
        feed = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1))
        next(feed)
        feed.cancel()
        for call in (checks, feed):
            with pytest.raises(grpc.RpcError) as raised:
                next(call)
            assert raised.value.code() == grpc.StatusCode.CANCELLED
        time.sleep(1.0)
        release.set()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_generate_dataset_reruns_without_end(server, clock, capsys) -> None:
    stubs, app = server
    clock.t = datetime.now(UTC)  # the ledger's clock is the wall clock, as in production
    args = ["--target", stubs.target, "--numbers", "8", "--years", "2", "--seed", "3", "--no-progress"]
    assert generate_dataset.main(args) == 0
    first = app.reader.max_position()
    assert "refused" not in capsys.readouterr().out
    time.sleep(1.1)  # the wall clock moves on; the simulated history does not
    assert generate_dataset.main(args) == 0
    out = capsys.readouterr().out
    assert "refused" not in out and "(replayed)" in out
    assert app.reader.max_position() == first


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [[], ["--unary", "--concurrency", "2"]])
def test_generate_dataset_stops_on_ctrl_c_saying_how_far_it_got(server, clock, tmp_path: Path, mode, caplog) -> None:
    stubs, app = server
    clock.t = datetime.now(UTC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    args = ["--target", stubs.target, "--numbers", "20000", "--seed", "9", "--no-progress", "--batch", "200", *mode]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.generate_dataset", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupted once it is under way (in a fresh clone, starting Python and compiling takes seconds).
    deadline = time.monotonic() + 60
    while app.reader.max_position() == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(3.0)  # past the numbers' provisioning, into the histories
    with caplog.at_level(logging.INFO):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        time.sleep(1.0)  # the server notices the cancelled calls
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("generate_dataset: interrupted after ") and " of 20000 numbers; the same command" in line
