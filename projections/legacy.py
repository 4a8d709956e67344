"""Views built by a release before generations: their tracking and schema versions become generation 0.

Those releases kept each view's position in ``rm_tracking`` and its schema version in ``rm_versions``
(views created before versions were kept are version 1), with the tables under their plain names, which
are generation 0's names. The first projector of this release records them in ``rm_generations`` and
drops the two old tables, so a projector of an older release started afterwards fails loudly (it starts
again from position 0 into tables that hold rows) instead of applying events twice.
"""

from __future__ import annotations

from typing import Any

from projections.generations import READY, Generation, insert, read_generations


def _exists(cur: Any, table: str, is_postgres: bool) -> bool:
    if is_postgres:
        return cur.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is not None
    return cur.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None


def migrate_legacy(cur: Any, is_postgres: bool, now_us: int) -> None:
    """Take over the views of a release before generations (once; a no-op afterwards)."""
    if not _exists(cur, "rm_tracking", is_postgres) or read_generations(cur):
        return
    tracked = {str(k): int(v) for k, v in cur.execute("SELECT view, position FROM rm_tracking").fetchall()}
    versions: dict[str, int] = {}
    if _exists(cur, "rm_versions", is_postgres):
        versions = {str(k): int(v) for k, v in cur.execute("SELECT view, version FROM rm_versions").fetchall()}
    for name, position in tracked.items():  # every view, not only this projector's: the old tables go
        insert(cur, Generation(name, 0, versions.get(name, 1), READY, position, None, 0, now_us))
    cur.execute("DROP TABLE IF EXISTS rm_versions")
    cur.execute("DROP TABLE rm_tracking")
