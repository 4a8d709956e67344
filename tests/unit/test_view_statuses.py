"""GetStatus's read models: the generation that serves, else the one being built, else a mismatch."""

from __future__ import annotations

from ledger.server.status import view_statuses
from ledger.v1 import history_service_pb2 as hpb
from projections import generations as gens_
from projections.queries import VIEW_CLASSES


def generation(view: str, n: int, state: str, position: int) -> gens_.Generation:
    return gens_.Generation(view, n, VIEW_CLASSES[view].version, state, position, None, 0, 0)


def test_each_view_is_shown_by_the_generation_that_matters() -> None:
    found = [
        generation("numbers", 0, gens_.READY, 90),
        generation("numbers", 1, gens_.BUILDING, 40),  # a rebuild beside the serving generation
        generation("sim_swaps", 0, gens_.BUILDING, 30),
        generation("compliance", 0, gens_.MISMATCH, 70),
        generation("compliance", 1, gens_.RETIRED, 100),
        # erasure: no generation at all yet
    ]
    shown = {v.name: v for v in view_statuses(found, head=100)}
    assert list(shown) == list(VIEW_CLASSES)
    numbers, swaps, compliance, erasure = (shown[n] for n in ("numbers", "sim_swaps", "compliance", "erasure"))
    assert (numbers.state, numbers.position, numbers.lag, numbers.rebuild_position) == (
        hpb.VIEW_STATE_SERVING,
        90,
        10,
        40,
    )
    assert (swaps.state, swaps.position, swaps.lag, swaps.rebuild_position) == (hpb.VIEW_STATE_REBUILDING, 30, 70, 0)
    assert (compliance.state, compliance.position) == (hpb.VIEW_STATE_MISMATCH, 70)
    assert (erasure.state, erasure.position, erasure.lag) == (hpb.VIEW_STATE_REBUILDING, 0, 100)
