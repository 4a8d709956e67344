"""Registrations whose data key is lost: neither stored in the key store nor destroyed by an erasure
(a tombstone). Their personal data can no longer be opened. Whole-ledger verification reports them and
the server logs them at start; nothing here reads or logs personal data."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from eventsourcing.utils import get_topic

from ledger.domain.subscriber import Subscriber

if TYPE_CHECKING:
    from uuid import UUID

    from ledger.adapters import EventLog
    from ledger.integrity import IntegrityReport
    from ledger.keys.tables import KeyTables

log = logging.getLogger("ledger.keys")
REGISTERED = get_topic(Subscriber.Registered)
CHUNK = 2000
# At most this many are named one by one in the start-up log (all are counted).
LOGGED = 100


def keyless_registrations(reader: EventLog, keys: KeyTables) -> list[tuple[int, str]]:
    """(position, subscriber id) of every registration with neither a stored data key nor a tombstone,
    in position order."""
    found: list[tuple[int, str]] = []
    chunk: list[tuple[int, UUID]] = []

    def flush() -> None:
        missing = set(keys.keyless([sid for _, sid in chunk]))
        found.extend((position, str(sid)) for position, sid in chunk if sid in missing)
        chunk.clear()

    for position, sid in reader.first_events(REGISTERED):
        chunk.append((position, sid))
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()
    return found


def with_keyless(report: IntegrityReport, keyless: list[tuple[int, str]]) -> IntegrityReport:
    """The verification's report with the keyless registrations: not ok when there is any; the first one's
    position is the first bad position unless the report already names an earlier problem."""
    if not keyless:
        return report
    report = replace(report, keyless_registrations=tuple(keyless))
    if not report.ok:
        return report
    position, sid = keyless[0]
    return replace(
        report,
        ok=False,
        first_bad_position=position,
        stream=sid.replace("-", ""),
        problem=(
            f"{len(keyless)} registration(s) have neither a stored data key nor a tombstone: their personal "
            f"data can no longer be opened (the first at position {position}, subscriber {sid})"
        ),
    )


def log_keyless(reader: EventLog, keys: KeyTables) -> int:
    """Log every keyless registration (position and subscriber id only); how many there are."""
    keyless = keyless_registrations(reader, keys)
    for position, sid in keyless[:LOGGED]:
        log.error(
            "the registration at position %d (subscriber %s) has neither a stored data key nor a tombstone: "
            "its personal data can no longer be opened",
            position,
            sid,
        )
    if keyless:
        log.error(
            "%d registration(s) without a data key (the first %d named above); `python -m scripts.verify_ledger` "
            "and VerifyIntegrity list them all",
            len(keyless),
            min(len(keyless), LOGGED),
        )
    return len(keyless)
