"""The profile summary of ``bench.profile``: the share of busy samples in each frame."""

from __future__ import annotations

from pathlib import Path

from bench.profile import top_frames


def test_profile_summary_counts_busy_stacks_only(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "_bootstrap (threading.py:1);Thread.run (threading.py:9);execute (ledger/server/x.py:5);"
        "decide (projections/queries.py:120) 6\n"
        "_bootstrap (threading.py:1);Thread.run (threading.py:9);execute (ledger/server/x.py:7) 2\n"
        "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:3);Condition.wait (threading.py:320) 50\n"
    )
    assert top_frames(raw, 5) == [(100.0, "execute (x.py)"), (75.0, "decide (queries.py)")]
