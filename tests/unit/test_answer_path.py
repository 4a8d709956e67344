"""One answer path: the edges translate (validation in, wire out); the answers are composed once, in
``projections.answers``, from rows read and authenticated by ``ReadModels`` and decided by pure functions;
classes are whole concepts, not split by inheritance."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from ledger.server.recycling import RecyclingServicer
from ledger.v1 import recycling_service_pb2_grpc
from projections.queries import ReadModels

ROOT = Path(__file__).resolve().parents[2]
# What composes an answer: reading its rows and deciding from them. The edge calls projections.answers.
COMPOSING = {
    "check_rows",
    "sim_swap_rows",
    "sim_swap_row",
    "decide",
    "day_bounds",
    "swapped_within",
    "latest_sim_change",
}


def test_the_edges_read_no_answer_rows_and_decide_nothing() -> None:
    found = []
    for path in sorted((ROOT / "ledger" / "server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
            if name in COMPOSING:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


def test_recycling_checks_are_composed_by_one_function() -> None:
    source = (ROOT / "projections" / "answers.py").read_text()
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute) and n.attr == "check_rows"]
    assert calls  # the composition reads the rows ...
    for path in sorted(ROOT.glob("[lps]*/**/*.py")):  # ... and nothing else outside the read models does
        if path.name not in ("answers.py", "queries.py") and "v1" not in path.parts:
            assert ".check_rows(" not in path.read_text(), path


def test_the_servicer_and_the_read_models_are_each_one_class() -> None:
    assert RecyclingServicer.__bases__ == (recycling_service_pb2_grpc.RecyclingServiceServicer,)
    assert ReadModels.__bases__ == (object,)
    for cls in (RecyclingServicer, ReadModels):
        assert all(
            inspect.getsourcefile(getattr(cls, n)) == inspect.getsourcefile(cls)
            for n in vars(cls)
            if inspect.isfunction(getattr(cls, n))
        )
