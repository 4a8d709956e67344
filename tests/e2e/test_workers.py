"""``serve --workers N``: a stop is a clean stop whenever it comes, even while a worker is still starting."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.procs import ENV, free_port


def children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def test_a_stop_while_the_workers_are_still_starting_is_a_clean_stop(tmp_path) -> None:
    # The supervisor passes SIGTERM on at once: here the workers are still loading Python, before the
    # handler that finishes their calls is in place. Nothing was served, so nothing is lost: exit 0.
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--db", f"sqlite:///{tmp_path}/ledger.db",
         "--listen", f"127.0.0.1:{free_port()}", "--workers", "2"],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(children(supervisor.pid)) < 2:
            assert time.monotonic() < deadline and supervisor.poll() is None
            time.sleep(0.005)
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=60)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, stderr
    assert "Traceback" not in stderr
