"""``ledger serve --workers N``: N server processes sharing one port (SO_REUSEPORT), supervised here.

The kernel spreads new connections across the processes. Each process is a complete server: commands
for any number are accepted by any of them (conflicts resolve by optimistic concurrency in the store),
and their projectors take turns safely. SIGTERM or Ctrl-C is passed on; each finishes its calls.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger("ledger.workers")


def child_args(argv: list[str]) -> list[str]:
    """The serve arguments for one worker: without ``--workers``, with ``--reuse-port``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [*out, "--reuse-port"]


def run_workers(count: int, argv: list[str]) -> int:
    """Start ``count`` workers and wait; returns 0 when every worker stopped cleanly."""
    if any(a.endswith(":0") for a in argv):
        print("ledger: --workers needs a fixed port in --listen", file=sys.stderr)
        return 2
    args = [sys.executable, "-m", "ledger", *child_args(argv)]
    children = [subprocess.Popen(args) for _ in range(count)]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while any(c.poll() is None for c in children):
            for i, child in enumerate(children):
                if child.poll() is not None and not stopping:
                    log.warning("worker %d exited with %s; restarting it", child.pid, child.returncode)
                    children[i] = subprocess.Popen(args)
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if all(c.returncode == 0 for c in children) else 1
