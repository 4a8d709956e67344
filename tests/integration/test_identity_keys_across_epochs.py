"""The identity questions answer from identity keys that survive the end of erasure epochs: when every
bucket is re-keyed (new bucket keys, new salt tags), the ID document still matches and its numbers are
still found, on both stores; the identity whose record was erased is found no more."""

from __future__ import annotations

from ledger.application.commands import DisconnectNumber, EraseSubscriberData
from ledger.application.identity import list_numbers_by_identity, match_identity
from ledger.application.pipeline import execute
from ledger.domain.rules import MatchResult
from ledger.keys.rotation import end_epoch
from tests.conftest import number, onboard_app, resident_id

STORES = ("sqlite", "postgres")


def test_matches_and_lookups_survive_epochs_that_rekey_every_bucket(app) -> None:
    kept, gone = number(501), number(502)
    onboard_app(app, kept, seq=51)
    erased = onboard_app(app, gone, seq=52)
    execute(app, DisconnectNumber(number=gone, reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t")
    execute(app, EraseSubscriberData(subscriber_id=erased, legal_basis="PIPL art. 47"), request_id="e", actor="t")
    store = app.vault.store

    def mark_all(tx) -> None:
        for bucket in range(app.vault.buckets):
            tx.execute(f"INSERT INTO {store.t('marked_buckets')} (bucket) VALUES (?) ON CONFLICT DO NOTHING", (bucket,))

    store.in_write(mark_all)  # as if an erasure had happened in every bucket
    rotation = end_epoch(app.vault)
    assert rotation is not None and rotation.marked_buckets == app.vault.buckets and rotation.rewrapped_salts >= 1
    outcome = match_identity(app, "bank", kept, id_type="RESIDENT_ID_CARD", id_number=resident_id(51))
    assert outcome.id_document == MatchResult.TRUE
    assert match_identity(app, "bank", kept, full_name="Person 51").name == MatchResult.TRUE
    found = list_numbers_by_identity(app, "dpo", "RESIDENT_ID_CARD", resident_id(51), "complaint 1")
    assert [t.number for t in found] == [kept]
    assert list_numbers_by_identity(app, "dpo", "RESIDENT_ID_CARD", resident_id(52), "complaint 2") == []
