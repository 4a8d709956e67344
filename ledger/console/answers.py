"""``ledger check`` and ``ledger simswap``: the answers an app gets about a number, in words."""

from __future__ import annotations

from datetime import date, datetime

from ledger.console.refusals import EXIT_ANSWERED
from ledger.console.session import CALL_SECONDS, Session
from ledger.console.text import enum_name, pairs, plural
from ledger.v1 import recycling_service_pb2 as rpb

CHECK_MEANING = {
    "CHANGED": "the number changed hands since then (not the same subscriber's)",
    "NOT_CHANGED": "the same subscriber has held it since then",
    "NO_DATA": "the ledger cannot tell",
}


def show_check(s: Session, since: date | None) -> int:
    """``ledger check NUMBER [--since DATE]``."""
    args = s.args
    day = since or datetime.now(s.times().zone).date()
    response = s.recycling.CheckNumber(
        rpb.CheckNumberRequest(number=args.number, since_date=day.isoformat()), timeout=CALL_SECONDS
    )
    if args.json:
        s.json(response)
        return EXIT_ANSWERED
    times = s.times()
    r = response.result
    status = enum_name(r, "status")
    meaning = CHECK_MEANING.get(status, "")
    if status == "NO_DATA":
        meaning += f": {enum_name(r, 'no_data_reason').replace('_', ' ').lower()}"
    s.print(f"{r.number} since {day.isoformat()} ({times.zone_name}): {status}", f"  {meaning}", "")
    items = [
        ("last disconnected", times.long(r.last_disconnected_at)),
        ("clearance", enum_name(r, "clearance")),
        ("outstanding holders", ", ".join(r.outstanding_holders) or "-"),
    ]
    if r.HasField("ported_out_at"):
        items.append(("ported out", times.long(r.ported_out_at)))
    items.append(("as of position", f"{r.as_of_position} (head {r.head_position})"))
    s.print(*pairs(items))
    if r.as_of_position < r.head_position:
        behind = r.head_position - r.as_of_position
        s.print(f"note: the read model was {plural(behind, 'event')} behind the head; `ledger status` shows why")
    return EXIT_ANSWERED


def show_simswap(s: Session) -> int:
    """``ledger simswap NUMBER [--max-age HOURS]``."""
    args = s.args
    checked = None
    if args.max_age is not None:
        checked = s.recycling.CheckSimSwap(
            rpb.CheckSimSwapRequest(number=args.number, max_age_hours=args.max_age), timeout=CALL_SECONDS
        )
        if args.json:
            s.json(checked)
            return EXIT_ANSWERED
    latest = s.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=args.number), timeout=CALL_SECONDS)
    if args.json:
        s.json(latest)
        return EXIT_ANSWERED
    times = s.times()
    if checked is not None:
        s.print(
            f"{args.number}: SIM changed within the last {args.max_age} hours: {'YES' if checked.swapped else 'no'}"
        )
    else:
        s.print(f"{args.number}: SIM changes on record")
    s.print(
        *pairs(
            [
                (
                    "latest SIM change",
                    times.long(latest.latest_sim_change_at)
                    if latest.HasField("latest_sim_change_at")
                    else "none on record",
                ),
                ("records begin", times.long(latest.monitored_since)),
                ("as of position", str(latest.as_of_position)),
            ]
        )
    )
    return EXIT_ANSWERED
