"""Write a one-page HTML compliance report from the read models, for an analyst to act on: the numbers
released before clearance (tenure, dates, who overrode and why), subscribers due for erasure (with their
last tenure's end), quarantined numbers and the holders that block them (for how long), violation rates
by channel and the worst agents, the period covered and a monthly trend. Inline SVG only: works offline.

    python -m scripts.compliance_report --db sqlite:///ledger.db -o compliance.html
"""

from __future__ import annotations

import argparse
import html
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from ledger.cli import RunFailed, add_db_argument, existing_store, one_line_errors, output_file
from ledger.config import Settings
from ledger.policy import Policy
from projections import reports, reverification
from projections.db import ViewsDatabase
from projections.people import PeopleQueries
from projections.queries import ReadModels
from projections.reverification import Rule
from scripts.report_charts import COLOURS, bar_chart, line_chart, percent
from scripts.reverification import rule_of

LIMIT = 200  # rows per table; the heading says how many there are in all


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _shown(total: int, rows: list[Any]) -> str:
    return f" ({total:,}; the first {len(rows):,} shown)" if total > len(rows) else f" ({total:,})"


def release_actors(db: str, violations: list[dict[str, Any]]) -> dict[str, str]:
    """Who released each violating tenure: read from the numbers' events (the views do not keep the actor)."""
    if not violations:
        return {}
    from ledger.bootstrap import open_ledger

    app = open_ledger(Settings.build(db=db))
    actors: dict[str, str] = {}
    try:
        ids = sorted({UUID(v["number_id"]) for v in violations})
        for k in range(0, len(ids), 500):
            for item in app.reader.read_streams(ids[k : k + 500]):
                if item.stored.topic.endswith(":Number.Released"):
                    event = app.mapper.to_domain_event(item.stored)
                    actors[event.tenure_id.hex] = event.actor  # type: ignore[attr-defined]
    finally:
        app.close()
        app.vault.store.close()
    return actors


def build(
    read_models: ReadModels,
    conn: reports.Connection,
    policy: Policy,
    now: datetime,
    actors_of: Any = None,
    campaign: tuple[str, Rule] | None = None,
) -> str:
    """The report's HTML; ``actors_of(violations)`` names who released each violating tenure; ``campaign``
    (a name and its rule) adds that re-verification campaign's progress by channel and agent."""
    people = PeopleQueries(read_models)
    channels = people.channel_rates()
    clearance = read_models.clearance_counts()
    quarantine = read_models.quarantine_summary(now)
    statuses = read_models.status_counts()
    unverified = people.unverified_in_service()
    violations = reports.clearance_violations(conn, LIMIT)
    violation_total = reports.count(conn, reports.VIOLATIONS_FROM)
    actors = actors_of(violations) if actors_of and violations else {}
    erasures = reports.erasures_due(conn, now, policy.erasure_retention_days, LIMIT)
    erasure_total = reports.erasures_due_count(conn, now, policy.erasure_retention_days)
    held = reports.erasures_held(conn, LIMIT)
    held_total = reports.count(conn, reports.HELD_FROM)
    blocked, holders = reports.quarantine_blockers(conn, now)
    first, last = reports.period(conn)
    trend = reports.monthly_trend(conn)
    agents = sorted(
        (a for a in people.agents() if a["activations"] >= 20),
        key=lambda a: (a["violations"] / a["activations"], a["violations"]),
        reverse=True,
    )[:15]
    tiles = [
        ("numbers in service", statuses.get("ACTIVE", 0) + statuses.get("SUSPENDED", 0), "info"),
        ("in service without verified holder", len(unverified), "bad" if unverified else "ok"),
        ("clearance violations", violation_total, "bad" if violation_total else "ok"),
        ("held back by clearance", len(blocked), "warn" if blocked else "ok"),
        ("due for release", quarantine["due_for_release"], "info"),
        ("erasures due", erasure_total, "warn" if erasure_total else "ok"),
    ]
    tile_html = "".join(
        f'<div class="tile" style="border-color:{COLOURS[c]}"><b>{v:,}</b><span>{html.escape(k)}</span></div>'
        for k, v, c in tiles
    )
    months = [m for m, _ in trend]
    sections = [
        "<h2>Monthly trend</h2>",
        line_chart(
            "Events per month (UTC)", months, {name: [c[name] for _, c in trend] for name in reports.TREND_SERIES}
        )
        if trend
        else "<p>No events yet.</p>",
        "<details><summary>The same by month, as a table</summary>",
        table(["month", *reports.TREND_SERIES], [[m, *(c[n] for n in reports.TREND_SERIES)] for m, c in trend]),
        "</details>",
        "<h2>Real-name verification by channel</h2>",
        bar_chart(
            "Violation rate: activations later cut off for fraud, spam or unverified identity",
            [(c["channel"], c["violation_rate"], COLOURS["bad"]) for c in channels],
            fmt=percent,
        ),
        bar_chart(
            "Numbers in service whose holder was verified before activation",
            [(c["channel"], c["verification_rate"], COLOURS["ok"]) for c in channels],
            fmt=percent,
        ),
        table(
            ["channel", "verifications", "activations", "violations", "violation rate", "in service"],
            [
                [
                    c["channel"],
                    c["verifications"],
                    c["activations"],
                    c["violations"],
                    percent(c["violation_rate"]),
                    c["in_service"],
                ]
                for c in channels
            ],
        ),
        "<h2>Agents with the highest violation rates (20 or more activations)</h2>",
        bar_chart(
            "Violation rate of the worst agents",
            [
                (f"{a['agent_id']} ({a['activations']:,})", a["violations"] / a["activations"], COLOURS["bad"])
                for a in agents
            ],
            fmt=percent,
        ),
        table(
            ["channel", "agent", "activations", "violations", "rate"],
            [
                [
                    a["channel"],
                    a["agent_id"],
                    a["activations"],
                    a["violations"],
                    percent(a["violations"] / a["activations"]),
                ]
                for a in agents
            ],
        ),
        "<h2>Clearance violations: numbers released before every holder confirmed"
        f"{_shown(violation_total, violations)}</h2>",
        table(
            [
                "number",
                "tenure",
                "holder (subscriber)",
                "activated",
                "disconnected",
                "released",
                "not confirmed by",
                "released by",
                "override reason",
            ],
            [
                [
                    v["number"],
                    f"#{v['ordinal']} {v['tenure_id'][:8]}",
                    v["subscriber_id"][:8],
                    v["activated_at"],
                    v["disconnected_at"],
                    v["released_at"],
                    v["outstanding_holders"],
                    actors.get(v["tenure_id"], "-"),
                    v["override_reason"] or "-",
                ]
                for v in violations
            ],
        ),
        "<h2>Quarantined numbers held back by clearance, and ported-out tenures whose clearance is pending "
        f"({len(blocked):,})</h2>",
        bar_chart(
            "Numbers each holder has not confirmed",
            [(h, e["numbers"], COLOURS["warn"]) for h, e in sorted(holders.items(), key=lambda i: -i[1]["numbers"])],
        ),
        table(
            ["holder", "numbers held back", "of them past quarantine", "longest wait (days)"],
            [[h, e["numbers"], e["past_quarantine"], e["longest_days"]] for h, e in sorted(holders.items())],
        ),
        table(
            ["number", "state", "disconnected or ported out", "quarantine until", "waiting on", "days waiting"],
            [
                [
                    b["number"],
                    b["state"].lower().replace("_", " "),
                    b["disconnected_at"],
                    b["quarantine_until"],
                    b["waiting_on"],
                    b["days_waiting"],
                ]
                for b in blocked[:LIMIT]
            ],
        ),
        f"<h2>Subscribers due for erasure{_shown(erasure_total, erasures)}</h2>",
        table(
            ["subscriber", "tenures", "last tenure ended", "registered", "days overdue"],
            [
                [e["subscriber_id"], e["tenure_count"], e["last_tenure_end"], e["registered_at"], e["days_overdue"]]
                for e in erasures
            ],
        ),
        f"<h2>Erasures requested and held by the retention period{_shown(held_total, held)}</h2>",
        table(
            ["subscriber", "tenures", "last tenure ended", "held until (then erased)"],
            [[e["subscriber_id"], e["tenure_count"], e["last_tenure_end"], e["held_until"]] for e in held],
        ),
        *campaign_sections(read_models, campaign),
        "<h2>Closed tenures by clearance, and numbers by state</h2>",
        bar_chart(
            f"{sum(clearance.values()):,} closed tenures by clearance",
            [
                ("cleared", clearance["CLEARED"], COLOURS["ok"]),
                ("pending", clearance["PENDING"], COLOURS["warn"]),
                ("violation", clearance["VIOLATION"], COLOURS["bad"]),
            ],
        ),
        bar_chart(
            "Numbers by lifecycle state", [(k.lower(), v, COLOURS["muted"]) for k, v in sorted(statuses.items())]
        ),
    ]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#1a202c}"
        ".tiles{display:flex;gap:1rem;flex-wrap:wrap}.tile{border-left:6px solid;padding:.5rem 1rem;"
        "background:#f7fafc;min-width:9rem}.tile b{display:block;font-size:1.6rem}.tile span{font-size:.85rem}"
        "table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}td,th{border-bottom:1px solid #e2e8f0;"
        "padding:.25rem .6rem;text-align:right;white-space:nowrap}td:last-child{white-space:normal}"
        "td:first-child,th:first-child{text-align:left}"
        "figcaption{font-weight:600;margin:.5rem 0}"
    )
    covered = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if first and last else "nothing yet"
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>Compliance report</title><style>{style}</style>"
        f"<h1>Subscriber ledger compliance report</h1><p>Period covered: <b>{covered}</b> (UTC). As of ledger "
        f"position {read_models.position():,}, generated {now:%Y-%m-%d %H:%M} UTC. Quarantine "
        f"{policy.quarantine_days} days; required holders {', '.join(policy.required_holders)}; erasure due "
        f"{policy.erasure_retention_days} days after the last tenure.</p><div class=tiles>{tile_html}</div>"
        f"{''.join(sections)}</html>"
    )


def campaign_sections(read_models: ReadModels, campaign: tuple[str, Rule] | None) -> list[str]:
    """Re-verification campaigns: the suspensions each made, and the named campaign's progress by channel
    and agent (found, re-verified since, suspended, still due)."""
    people = PeopleQueries(read_models)
    tenures = people.open_tenures()
    seen = reverification.suspensions_by_campaign(tenures)
    parts = [
        "<h2>Re-verification campaigns (numbers in service)</h2>",
        table(
            ["campaign", "suspended", "still suspended", "re-verified since"],
            [[name, c["suspended"], c["still suspended"], c["re-verified since"]] for name, c in seen.items()],
        ),
    ]
    if campaign is not None:
        name, rule = campaign
        rows = reverification.progress(name, rule, tenures, people.verifications())
        totals = {k: sum(r[k] for r in rows.values()) for k in ("found", "re-verified", "suspended", "due")}
        parts += [
            f"<h3>Campaign {html.escape(name)} by channel and sales point: {totals['found']:,} found, "
            f"{totals['re-verified']:,} re-verified, {totals['suspended']:,} suspended, "
            f"{totals['due']:,} still due</h3>",
            table(
                ["channel", "agent (sales point)", "found", "re-verified", "suspended", "still due"],
                [
                    [ch, agent or "-", r["found"], r["re-verified"], r["suspended"], r["due"]]
                    for (ch, agent), r in rows.items()
                ],
            ),
        ]
    return parts


@one_line_errors("compliance_report")
def main(argv: list[str] | None = None) -> int:
    """Write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--policy", type=Path, help="policy file, as given to the server")
    parser.add_argument("-o", "--output", type=Path, default=Path("compliance.html"), help="HTML file to write")
    parser.add_argument("--campaign", help="a re-verification campaign to report on, with its rule:")
    parser.add_argument("--verified-before", metavar="DATE", help="the campaign's --verified-before")
    parser.add_argument("--methods", metavar="LIST", help="the campaign's --methods")
    args = parser.parse_args(argv)
    campaign = (args.campaign, rule_of(args)) if args.campaign else None
    store = existing_store(args.db)
    policy = Policy.from_toml(args.policy) if args.policy else Policy()
    views = ViewsDatabase.for_store(store)
    if not views.exists():
        raise RunFailed(f"no read models at {views.sqlite_path}; start the server or `ledger project` once")
    read_models = ReadModels(views)
    conn = views.connect()
    try:
        page = build(read_models, conn, policy, datetime.now(UTC), lambda rows: release_actors(args.db, rows), campaign)
    finally:
        conn.close()
        read_models.close()
    with output_file(args.output) as out:
        out.write(page)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
