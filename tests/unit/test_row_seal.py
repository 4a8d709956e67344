"""The keyed hashes of view rows: a row's hash holds for its values only, under its table's key only, and
a row that fails it decides nothing (READ_MODEL_MISMATCH)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from projections.recycling import MISMATCH, UNTRUSTED, day_bounds, decide
from projections.seal import RowSeal

ROW = ("+8617012345678", 1_700_000_000_000_000, 1_700_000_000_000_001, None, "[]", None)


def test_a_hash_holds_for_its_row_table_and_secret_only() -> None:
    seal = RowSeal(b"s" * 32)
    mac = seal.mac(seal.key("rm_checks"), ROW)
    assert seal.holds(seal.key("rm_checks"), ROW, mac)
    assert not seal.holds(seal.key("rm_checks"), (*ROW[:3], 1_700_000_000_000_002, *ROW[4:]), mac)  # an edit
    assert not seal.holds(seal.key("rm_numbers"), ROW, mac)  # the same values in another table
    assert not seal.holds(RowSeal(b"t" * 32).key("rm_checks"), ROW, mac)  # another secret
    assert not seal.holds(seal.key("rm_checks"), ROW, None)  # no hash
    assert len(mac) == 32 and seal.tag(ROW[0]) != ROW[0] and ROW[0][1:] not in seal.tag(ROW[0])


def test_an_untrusted_row_decides_nothing() -> None:
    assert decide(UNTRUSTED, day_bounds(date(2026, 1, 1), ZoneInfo("UTC"))) == MISMATCH
    assert MISMATCH[0] == "NO_DATA" and MISMATCH[5] == "READ_MODEL_MISMATCH"
