"""``ledger serve --workers N``: N server processes sharing one port (SO_REUSEPORT), supervised here.

The kernel spreads new connections across the processes. Each process is a complete server: commands
for any number are accepted by any of them (conflicts resolve by optimistic concurrency in the store),
and their projectors take turns safely. SIGTERM or Ctrl-C is passed on; each finishes its calls.
With ``--metrics`` the workers count into files of a temporary directory (prometheus-client's
multiprocess mode) and this process serves their sum on the metrics port; the directory goes at exit.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

log = logging.getLogger("ledger.workers")


def child_args(argv: list[str]) -> list[str]:
    """The serve arguments for one worker: without ``--workers``, with ``--reuse-port``; with ``--metrics``,
    the worker counts (``--metrics-shared``) and the parent serves the port."""
    out: list[str] = []
    skip = False
    metrics = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "--metrics"):
            skip = True
            metrics = metrics or arg == "--metrics"
            continue
        if arg.startswith(("--workers=", "--metrics=")):
            metrics = metrics or arg.startswith("--metrics=")
            continue
        out.append(arg)
    return [*out, "--reuse-port", *(["--metrics-shared"] if metrics else [])]


def metrics_listen(argv: list[str]) -> str | None:
    """The ``--metrics HOST:PORT`` given, if any."""
    for i, arg in enumerate(argv):
        if arg == "--metrics" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--metrics="):
            return arg.partition("=")[2]
    return None


def run_workers(count: int, argv: list[str]) -> int:
    """Start ``count`` workers and wait; returns 0 when every worker stopped cleanly."""
    if any(a.endswith(":0") for a in argv):
        print("ledger: --workers needs a fixed port in --listen", file=sys.stderr)
        return 2
    args = [sys.executable, "-m", "ledger", *child_args(argv)]
    listen = metrics_listen(argv)
    shared = tempfile.mkdtemp(prefix="ledger-metrics-") if listen else None
    # The workers count into files there (prometheus-client's multiprocess mode); this process serves the sum.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": shared} if shared else None
    stop_metrics: Callable[[], None] | None = None
    try:
        if listen and shared:
            from ledger.server.scrape import serve_shared

            stop_metrics = serve_shared(listen, shared)
        return _supervise(count, args, env, shared)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        if shared:
            shutil.rmtree(shared, ignore_errors=True)


def _supervise(count: int, args: list[str], env: dict[str, str] | None, shared: str | None) -> int:
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def start(slot: int) -> None:
        # SIGTERM is blocked until the worker is in the list: here, so a stop arriving meanwhile reaches it;
        # in the worker, which inherits the mask, so a stop sent before its handler is in place (while it
        # loads, or before its ``exec``) waits for it. ``serve`` unblocks it once the handler is set.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            child = subprocess.Popen(args, env=env)
            children[slot : slot + 1] = [child]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    # In place before the first worker starts: a stop that comes while they start reaches each of them.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(count):
            if not stopping:
                start(slot)
        while any(c.poll() is None for c in children):
            for i, child in enumerate(children):
                if child.poll() is not None and not stopping:
                    log.warning("worker %d exited with %s; restarting it", child.pid, child.returncode)
                    if shared:  # its gauges no longer count; its counters do
                        from prometheus_client import multiprocess

                        multiprocess.mark_process_dead(child.pid, shared)
                    start(i)
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if all(c.returncode == 0 for c in children) else 1
