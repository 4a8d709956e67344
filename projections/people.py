"""Questions about people and their SIMs answered from the read models: real-name compliance by
channel and agent, the latest SIM swap of a number, subscribers due for erasure. Mixed into
``ReadModels``, which gives ``_fetch`` (one statement over a view's serving generation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ledger.domain import errors
from projections.reverification import OPEN_TENURES_SQL, VERIFICATIONS_SQL, OpenTenure, open_tenures
from projections.simswap import UNTRUSTED, SimSwapRow
from projections.views import from_us, us
from projections.views.subscribers import SWAP_COLUMNS

T = TypeVar("T")


def refuse_damaged(cur: Any, numbers: Sequence[str]) -> None:
    """Raise EventUndecodable when one of these numbers (at most a few hundred) has a stored event that does
    not decode (``rm_damaged``, see projections.projector): its rows stop before it, so nothing is answered
    from them."""
    row = cur.execute(
        "SELECT position, stream_id, version FROM rm_damaged "
        f"WHERE number IN ({','.join('?' * len(numbers))}) ORDER BY position LIMIT 1",
        list(numbers),
    ).fetchone()
    if row is not None:
        raise errors.EventUndecodable(int(row[0]), str(row[1]), int(row[2]))


class PeopleQueries:
    """Compliance, SIM swap and erasure questions."""

    def _fetch(self, view: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def read(self, views: Sequence[str], work: Callable[[Any, dict[str, Any]], T]) -> T:
        raise NotImplementedError

    def _answering(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def _recorded(self, numbers: Sequence[str], position: int) -> list[str]:
        raise NotImplementedError

    def _untrusted(self, view: str, table: str, numbers: Sequence[str], position: int, what: str) -> None:
        raise NotImplementedError

    def sim_swap_row(self, number: str) -> tuple[int, SimSwapRow | None]:
        """The sim_swaps view's position and the number's row there (None when unknown), in one snapshot."""
        position, rows = self.sim_swap_rows([number])
        return position, rows.get(number)

    def sim_swap_rows(self, numbers: Sequence[str]) -> tuple[int, dict[str, SimSwapRow]]:
        """The sim_swaps view's position and the rows of those numbers it knows, in one snapshot. A row that
        fails its keyed hash, and a missing row of a number the view should hold, is ``UNTRUSTED``."""
        seal, _ = self._answering()

        def work(cur: Any, chosen: dict[str, Any]) -> tuple[int, dict[str, SimSwapRow]]:
            gen = chosen["sim_swaps"]
            table = "rm_swap_numbers" + gen.suffix
            key = seal.key("rm_swap_numbers")
            found: dict[str, SimSwapRow] = {}
            bad: list[str] = []
            unique = list(dict.fromkeys(numbers))
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                rows = cur.execute(
                    f"SELECT {', '.join(SWAP_COLUMNS)}, mac FROM rm_swap_numbers "
                    f"WHERE number IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for r in rows:
                    if seal.holds(key, tuple(r[:-1]), r[-1]):
                        found[r[1]] = SimSwapRow(r[2], r[3], r[4], r[5])
                    else:
                        bad.append(r[1])
                        found[r[1]] = UNTRUSTED
                refuse_damaged(cur, chunk)
            if bad:
                self._untrusted("sim_swaps", table, bad, gen.position, "fails its keyed hash")
            missing = self._recorded([n for n in unique if n not in found], gen.position)
            if missing:
                self._untrusted("sim_swaps", table, missing, gen.position, "is missing")
                found.update((n, UNTRUSTED) for n in missing)
            return gen.position, found

        return self.read(("sim_swaps",), work)

    def unverified_in_service(self) -> list[tuple[str, str]]:
        """(number_id, subscriber_id) of open tenures whose holder has no verification."""
        return self._fetch(
            "compliance",
            "SELECT t.number_id, t.subscriber_id FROM rm_cmp_tenures t JOIN rm_cmp_subscribers s "
            "ON s.subscriber_id = t.subscriber_id WHERE t.open = 1 AND (s.verified_us IS NULL "
            "OR s.verified_us > t.activated_us) ORDER BY t.number_id",
        )

    def open_tenures(self) -> list[OpenTenure]:
        """Every open tenure with its number, holder, channel, agent, suspension and the holder's latest
        verification (what a re-verification campaign looks through), by number."""
        return open_tenures(self._fetch("compliance", OPEN_TENURES_SQL))

    def verifications(self) -> list[Any]:
        """Every verification recorded: (subscriber_id, verified_us, method), in ledger order."""
        return self._fetch("compliance", VERIFICATIONS_SQL)

    def agents(self) -> list[dict[str, Any]]:
        """Verifications, activations and violations by channel and agent. Self-service (no agent, as on an
        app or web channel) is no agent: it is counted under its channel only (``channel_rates``)."""
        rows = self._fetch(
            "compliance",
            "SELECT channel, agent_id, verifications, activations, violations FROM rm_cmp_agents "
            "WHERE agent_id != '' ORDER BY channel, agent_id",
        )
        return [
            {"channel": r[0], "agent_id": r[1], "verifications": r[2], "activations": r[3], "violations": r[4]}
            for r in rows
        ]

    def channel_rates(self) -> list[dict[str, Any]]:
        """Per channel: tenures in service, how many with a verified holder, activations and violations."""
        in_service = dict(
            (r[0], (r[1], r[2]))
            for r in self._fetch(
                "compliance",
                "SELECT t.channel, count(*), CAST(sum(CASE WHEN s.verified_us IS NOT NULL AND s.verified_us <= "
                "t.activated_us THEN 1 ELSE 0 END) AS BIGINT) FROM rm_cmp_tenures t JOIN rm_cmp_subscribers s "
                "ON s.subscriber_id = t.subscriber_id WHERE t.open = 1 GROUP BY t.channel",
            )
        )
        totals = self._fetch(
            "compliance",
            "SELECT channel, CAST(sum(verifications) AS BIGINT), CAST(sum(activations) AS BIGINT), "
            "CAST(sum(violations) AS BIGINT) FROM rm_cmp_agents "
            "GROUP BY channel ORDER BY channel",
        )
        rows = []
        for channel, verifications, activations, violations in totals:
            open_count, verified = in_service.get(channel, (0, 0))
            rows.append(
                {
                    "channel": channel,
                    "verifications": verifications,
                    "activations": activations,
                    "violations": violations,
                    "in_service": open_count,
                    "in_service_verified": verified,
                    "verification_rate": verified / open_count if open_count else 1.0,
                    "violation_rate": violations / activations if activations else 0.0,
                }
            )
        return rows

    def latest_swap(self, number: str) -> dict[str, Any] | None:
        """The number's latest SIM swap, if any."""
        rows = self._fetch(
            "sim_swaps",
            "SELECT number, swapped_us, old_iccid, new_iccid, reason, channel, agent_id, swap_count "
            "FROM rm_sim_swaps WHERE number = ?",
            (number,),
        )
        if not rows:
            return None
        row = rows[0]
        keys = ("number", "swapped_at", "old_iccid", "new_iccid", "reason", "channel", "agent_id", "swap_count")
        result = dict(zip(keys, row, strict=True))
        result["swapped_at"] = from_us(row[1])
        return result

    def erasures_due(self, now: datetime, retention_days: int, limit: int = 10_000) -> list[str]:
        """Subscribers not erased whose tenures all ended (or who never held one) before the retention period;
        a requested erasure held by the retention period is not due (it completes when the hold ends)."""
        cutoff = us(now - timedelta(days=retention_days))
        rows = self._fetch(
            "erasure",
            "SELECT subscriber_id FROM rm_er_subscribers WHERE erased_us IS NULL AND open_tenures = 0 "
            "AND held_until_us IS NULL "
            "AND COALESCE(last_end_us, registered_us) <= ? ORDER BY subscriber_id LIMIT ?",
            (cutoff, limit),
        )
        return [r[0] for r in rows]
