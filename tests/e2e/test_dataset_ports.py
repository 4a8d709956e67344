"""generate_dataset through a live server: ports out, returns, ports in and SIM swaps are all accepted
(no command refused), and a re-run records nothing new."""

from __future__ import annotations

import re

import pytest

from scripts import generate_dataset


@pytest.mark.timeout(300)
def test_the_dataset_ports_returns_and_swaps_without_a_refusal(server, capsys) -> None:
    stubs, app = server
    args = ["--target", stubs.target, "--numbers", "300", "--years", "5", "--seed", "11", "--end", "2026-01-01"]
    assert generate_dataset.main([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "refused" not in out and "skipped" not in out, out
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+)\s+(\d+)$", out, re.M)}
    for rpc in ("PortOutNumber", "ReturnNumber", "PortInNumber", "SwapSim", "EraseSubscriberData"):
        assert counts.get(rpc, 0) > 0, (rpc, out)
    first = app.reader.max_position()
    assert generate_dataset.main([*args, "--no-progress"]) == 0
    assert app.reader.max_position() == first
