"""Profiles and memory of the server under load: py-spy samples, their busiest frames, peak RSS."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PY_SPY = (
    str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists() else "py-spy"
)


class Profiler:
    """With ``--profile DIR``, py-spy samples the server's thread holding the GIL during a phase and writes
    the stacks to ``DIR/<phase>.txt`` (collapsed, for flamegraph.pl or speedscope); the heaviest functions
    are printed."""

    def __init__(self, directory: Path | None, pid: int) -> None:
        self.directory = directory
        self.pid = pid

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Sample the server while the body runs."""
        if self.directory is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{name}.txt"
        spy = subprocess.Popen(
            [_PY_SPY, "record", "--pid", str(self.pid), "--rate", "250", "--format", "raw", "--output", str(out),
             "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        print(f"  profile of {name} ({out}): most samples, including the functions each one calls")
        for share, frame in top_frames(out, 24):
            print(f"    {share:5.1f}%  {frame}")


def top_frames(path: Path, count: int) -> list[tuple[float, str]]:
    """The functions on the most sampled stacks of a py-spy raw profile, with the share of samples they
    (or what they call) were on, busiest first; idle threads (waiting for work or a lock) are left out."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [_FRAME.sub(r"\1 (\2)", f) for f in stack.split(";")]
        if _name(frames[-1]) in _IDLE:
            continue
        total += int(n)
        for frame in dict.fromkeys(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(n)
    ranked = sorted(((v, k) for k, v in inclusive.items() if _name(k) not in _PLUMBING), reverse=True)
    return [(100 * v / max(total, 1), k) for v, k in ranked[:count]]


# "name (path/to/module.py:123)" -> "name (module.py)"
_FRAME = re.compile(r"^(\S+) \((?:.*/)?([^/:]+)(?::\d+)?\)$")
_IDLE = {"wait", "select", "poll", "acquire", "_wait_for_tstate_lock", "sleep", "result"}
_PLUMBING = {"_bootstrap", "_bootstrap_inner", "run", "_worker", "<module>"}


def _name(frame: str) -> str:
    return frame.split(" ")[0].rsplit(".", 1)[-1]


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
