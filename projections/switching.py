"""How a projector makes a generation of a view: create it beside the serving one, promote it once it
has caught up (with the serving generation of its schema version, or with the ledger when none serves),
retire the one it replaces, drop retired tables after a grace, and rebuild on demand."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from projections import generations as gens_
from projections.generations import BUILDING, MISMATCH, READY, RETIRED, Generation

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from eventsourcing.persistence import ApplicationRecorder

    from projections.db import Cursor
    from projections.views import View

log = logging.getLogger("projections.projector")


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class Switching:
    """Generations made, promoted, dropped and rebuilt by a projector."""

    views: list[View]
    recorder: ApplicationRecorder
    _rebuilding: dict[str, str]

    def _cursor(self, cur: Any, view: View, gen: Generation) -> Any:
        raise NotImplementedError

    def _dialect(self, statement: str) -> str:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _lock_views(self, cur: Cursor) -> None:
        raise NotImplementedError

    def catch_up(self) -> int:
        """Apply batches until caught up."""
        raise NotImplementedError

    def _create(self, cur: Cursor, found: list[Generation], view: View) -> Generation:
        """A new, empty generation of a view (generation 0 on a ledger that never had this view)."""
        own = [g for g in found if g.view == view.name]
        number = max((g.generation for g in own), default=-1) + 1
        older = [g for g in own if g.state == READY and g.version != view.version]
        if older:
            log.warning(
                "view %s was built with schema version %d, this release has %d: building generation %d "
                "beside it from position 0",
                view.name,
                older[-1].version,
                view.version,
                number,
            )
        gen = Generation(view.name, number, view.version, BUILDING, 0, None, 0, _now_us())
        gens_.drop_tables(cur, view, gen)  # leftovers of a generation whose row is gone
        named = self._cursor(cur, view, gen)
        for statement in view.schema:
            named.execute(self._dialect(statement))
        gens_.insert(cur, gen)
        return gen

    def _promote(self, cur: Cursor, found: list[Generation], targets: dict[str, Generation], at_end: bool) -> None:
        """A generation being built serves once it has caught up: with the serving generation of its
        schema version (a rebuild), or with the ledger (when none serves)."""
        head = None
        for view in self.views:
            gen = targets[view.name]
            if gen.state != BUILDING:
                continue
            current = gens_.of_view(found, view.name, view.version, READY)
            if current is None:
                if not at_end:
                    continue
                if head is None:
                    head = self.recorder.max_notification_id() or 0
                if gen.position < head:
                    continue
            elif gen.position < current.position:
                continue
            now = _now_us()
            gens_.set_state(cur, gen.key, READY, now)
            for old in found:
                if old.view == view.name and old.version == view.version and old.state in (READY, MISMATCH):
                    gens_.set_state(cur, old.key, RETIRED, now)
            log.info("view %s: generation %d serves from position %d", view.name, gen.generation, gen.position)
            targets[view.name] = replace(gen, state=READY, changed_us=now)
            self._rebuilding.pop(view.name, None)

    def _drop_retired(self, cur: Cursor, found: list[Generation]) -> None:
        by_name = {view.name: view for view in self.views}
        cutoff = _now_us() - gens_.RETIRED_GRACE_US
        for gen in found:
            view = by_name.get(gen.view)
            if view is not None and gen.state == RETIRED and gen.changed_us <= cutoff:
                gens_.drop_tables(cur, view, gen)
                cur.execute("DELETE FROM rm_generations WHERE key=?", (gen.key,))
                log.info("view %s: generation %d dropped", gen.view, gen.generation)

    def rebuild(self, names: Sequence[str] | None = None) -> int:
        """Rebuild views (all, or those named) from position 0 beside the generation that serves, which
        goes on serving (and following the ledger) until the new one has caught up and replaces it in one
        transaction. A generation left half-built by a rebuild that died is resumed. Returns events read."""
        chosen = [v for v in self.views if names is None or v.name in names]
        with self._transaction() as cur:
            self._lock_views(cur)
            found = gens_.read_generations(cur)
            for view in chosen:
                resumed = gens_.of_view(found, view.name, view.version, BUILDING)
                if resumed is not None:
                    log.info(
                        "view %s: resuming generation %d from position %d",
                        view.name,
                        resumed.generation,
                        resumed.position,
                    )
                target = resumed or self._create(cur, found, view)
                if resumed is None:
                    found.append(target)
                    log.info("view %s: building generation %d beside the serving one", view.name, target.generation)
                self._rebuilding[view.name] = target.key
        return self.catch_up()
