"""A person's slips end with one line that says what is wrong and what to do (exit 2 for usage, 1 for a
failed run), never a traceback: ``ledger serve`` and ``python -m`` processes here; the slips of ``ledger``
and the batch jobs called in process are tests/unit/test_job_slips.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TEST_MASTER_KEY
from tests.e2e.test_cli_reflection import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ...`` as a person would, from ``cwd``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout
    )


def one_line(stderr: str) -> str:
    """The one line a slip must print (a log line of the server's start may come before it)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing said"
    return lines[-1]


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["ledger", "serve", "--listen", f"127.0.0.1:{port}"], tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("ledger: cannot listen on") and "in use" in line and "--listen" in line
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_a_bad_listen_address_is_one_line(tmp_path: Path) -> None:
    result = run(["ledger", "serve", "--listen", "nonsense"], tmp_path)
    assert result.returncode == 2 and "--listen must be HOST:PORT" in one_line(result.stderr)
    result = run(["ledger", "serve", "--listen", "192.0.2.1:50051"], tmp_path)
    assert result.returncode == 1 and "address of this host" in one_line(result.stderr)


def test_a_db_in_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = run(["ledger", "serve", "--db", "sqlite:///no/such/dir/ledger.db", "--listen", "127.0.0.1:0"], tmp_path)
    assert result.returncode == 2
    assert "no/such/dir" in one_line(result.stderr) and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()
    # A new ledger in a folder that exists is still one command.
    (tmp_path / "data").mkdir()
    created = run(["ledger", "migrate", "--db", "sqlite:///data/ledger.db"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data" / "ledger.db").is_file()


def test_postgres_refusing_connections_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://ledger:secret@127.0.0.1:{free_port()}/ledger"
    result = run(
        ["ledger", "serve", "--db", url, "--listen", "127.0.0.1:0"], tmp_path, LEDGER_MASTER_KEY=TEST_MASTER_KEY
    )
    assert result.returncode == 1, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("ledger: cannot use the PostgreSQL store") and "refused" in line, line


def test_missing_input_file_is_one_line(tmp_path: Path) -> None:
    for args in (
        ["scripts.recycling_check", "nope.csv"],
        ["scripts.verify_export", "nope.jsonl"],
    ):
        result = run(args, tmp_path)
        assert result.returncode == 1, result.stderr
        assert "nope." in one_line(result.stderr) and "No such file" in result.stderr


def test_dev_serve_keeps_the_callers_folder(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / "dev"), "serve", "--db", "sqlite:///mine.db", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "LEDGER_MASTER_KEY"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        line = ""
        while time.monotonic() < deadline and "ready" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "server exited"
        assert "ready" in line
        assert (tmp_path / "mine.db").is_file() and (tmp_path / "mine.master.key").is_file()
        assert not (ROOT / "mine.db").exists()
    finally:
        proc.terminate()
        proc.wait(30)
