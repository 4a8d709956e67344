"""The Merkle tree as the stores keep it, on SQLite and PostgreSQL: written with the events, caught up
after it was turned off (at the next insert, or by ``ledger migrate``), equal to a rebuild from the
events, and refusing to grow over events removed from the log."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import migrate, open_ledger
from ledger.proofs.log_tree import TreeMismatch
from ledger.proofs.merkle import leaf_input
from tests.conftest import number, onboard_app
from tests.e2e.tamper import Store
from tests.unit.test_merkle import mth


def rebuilt_root(app) -> bytes:
    events = list(app.reader.chained())
    return mth([leaf_input(e.position, e.stream_id, e.version, e.topic, e.state) for e in events])


def reopen(settings, clock, tree: bool):
    return open_ledger(dataclasses.replace(settings, merkle_tree=tree), clock)


def close(app) -> None:
    app.close()
    app.vault.store.close()


def test_the_tree_is_the_one_a_rebuild_from_the_events_gives(store_app) -> None:
    for i in range(3):
        onboard_app(store_app, number(i), seq=i)
    size = store_app.proofs.tree_size()
    assert size == store_app.reader.max_position() > 10
    assert store_app.proofs.root(size) == rebuilt_root(store_app)


@pytest.mark.parametrize("how", ["next insert", "migrate"])
def test_a_tree_turned_off_catches_up(store_settings, clock, how) -> None:
    assert "turned off" in migrate(dataclasses.replace(store_settings, merkle_tree=False))
    app = reopen(store_settings, clock, tree=False)
    try:
        onboard_app(app, number(1), seq=1)
        assert app.proofs.tree_size() == 0 < app.reader.max_position()
    finally:
        close(app)
    if how == "migrate":
        assert "Merkle tree (+" in migrate(store_settings)
    app = reopen(store_settings, clock, tree=True)
    try:
        if how == "next insert":
            onboard_app(app, number(2), seq=2)
        size = app.proofs.tree_size()
        assert size == app.reader.max_position()
        assert app.proofs.root(size) == rebuilt_root(app)
    finally:
        close(app)


def test_new_events_are_refused_over_events_removed_from_the_log(store_settings, clock) -> None:
    app = reopen(store_settings, clock, tree=True)
    try:
        onboard_app(app, number(1), seq=1)
        store = Store(store_settings)
        try:
            store.delete(store.max_position())
        finally:
            store.close()
        with pytest.raises(TreeMismatch):
            execute(app, ProvisionNumbers(numbers=[number(9)]), request_id="after", actor="t")
    finally:
        close(app)


def test_two_writers_interleaved_keep_one_tree(store_settings, clock) -> None:
    # Each recorder remembers the frontier it last committed; another writer's events in between must
    # make it read the stored one again.
    first, second = reopen(store_settings, clock, tree=True), reopen(store_settings, clock, tree=True)
    try:
        for i in range(6):
            writer = first if i % 3 else second
            execute(writer, ProvisionNumbers(numbers=[number(20 + i)]), request_id=f"p{i}", actor="t")
        size = first.proofs.tree_size()
        assert size == first.reader.max_position()
        assert first.proofs.root(size) == rebuilt_root(first)
    finally:
        close(first)
        close(second)
