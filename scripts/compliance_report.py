"""Write a one-page HTML compliance report from the read models: real-name verification and violation
rates by channel, recycling clearance status, numbers pending release, agents to look at, erasures due.

    python -m scripts.compliance_report --db sqlite:///ledger.db -o compliance.html
"""

from __future__ import annotations

import argparse
import html
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.cli import RunFailed, add_db_argument, existing_store, one_line_errors, output_file
from ledger.config import Policy
from projections.db import ViewsDatabase
from projections.queries import ReadModels

COLOURS = {"ok": "#2f855a", "warn": "#c05621", "bad": "#c53030", "info": "#2b6cb0", "muted": "#718096"}


def bar_chart(title: str, rows: list[tuple[str, float, str]], unit: str = "", percent: bool = False) -> str:
    """A horizontal SVG bar chart of (label, value, colour) rows."""
    width, bar_h, label_w = 560, 22, 150
    top = max((v for _, v, _ in rows), default=0) or 1
    scale = 1.0 if percent else top
    height = 30 + len(rows) * (bar_h + 8)
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}">']
    for i, (label, value, colour) in enumerate(rows):
        y = 24 + i * (bar_h + 8)
        w = max(1.0, (width - label_w - 90) * min(value / scale, 1.0))
        shown = f"{value:.1%}" if percent else f"{value:,.0f}{unit}"
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="13">{html.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}" rx="3"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="13">{shown}</text>'
        )
    parts.append("</svg>")
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}</figure>"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build(read_models: ReadModels, policy: Policy, now: datetime) -> str:
    """The report's HTML."""
    channels = read_models.channel_rates()
    clearance = read_models.clearance_counts()
    quarantine = read_models.quarantine_summary(now)
    statuses = read_models.status_counts()
    unverified = read_models.unverified_in_service()
    erasures = read_models.erasures_due(now, policy.erasure_retention_days, limit=1_000_000)
    agents = sorted(
        (a for a in read_models.agents() if a["activations"] >= 20),
        key=lambda a: a["violations"] / a["activations"],
        reverse=True,
    )[:15]
    closed = sum(clearance.values()) or 1
    tiles = [
        ("numbers in service", statuses.get("ACTIVE", 0) + statuses.get("SUSPENDED", 0), "info"),
        ("in service without verified holder", len(unverified), "bad" if unverified else "ok"),
        ("clearance violations", clearance["VIOLATION"], "bad" if clearance["VIOLATION"] else "ok"),
        ("due for release", quarantine["due_for_release"], "info"),
        ("erasures due", len(erasures), "warn" if erasures else "ok"),
    ]
    tile_html = "".join(
        f'<div class="tile" style="border-color:{COLOURS[c]}"><b>{v:,}</b><span>{html.escape(k)}</span></div>'
        for k, v, c in tiles
    )
    sections = [
        "<h2>Real-name verification by channel</h2>",
        bar_chart(
            "Numbers in service whose holder was verified before activation",
            [(c["channel"], c["verification_rate"], COLOURS["ok"]) for c in channels],
            percent=True,
        ),
        bar_chart(
            "Violation rate: activations later cut off for fraud, spam or unverified identity",
            [(c["channel"], c["violation_rate"], COLOURS["bad"]) for c in channels],
            percent=True,
        ),
        table(
            ["channel", "verifications", "activations", "violations", "violation rate", "in service"],
            [
                [
                    c["channel"],
                    c["verifications"],
                    c["activations"],
                    c["violations"],
                    f"{c['violation_rate']:.2%}",
                    c["in_service"],
                ]
                for c in channels
            ],
        ),
        "<h2>Agents with the highest violation rates (20 or more activations)</h2>",
        table(
            ["channel", "agent", "activations", "violations", "rate"],
            [
                [
                    a["channel"],
                    a["agent_id"],
                    a["activations"],
                    a["violations"],
                    f"{a['violations'] / a['activations']:.2%}",
                ]
                for a in agents
            ],
        ),
        "<h2>Recycling: clearance of closed tenures</h2>",
        bar_chart(
            f"{closed:,} closed tenures by clearance",
            [
                ("cleared", clearance["CLEARED"], COLOURS["ok"]),
                ("pending", clearance["PENDING"], COLOURS["warn"]),
                ("violation", clearance["VIOLATION"], COLOURS["bad"]),
            ],
        ),
        "<h2>Quarantined numbers</h2>",
        bar_chart(
            "What holds quarantined numbers back",
            [
                ("in quarantine", quarantine["in_quarantine"], COLOURS["info"]),
                ("clearance pending", quarantine["clearance_pending"], COLOURS["warn"]),
                ("due for release", quarantine["due_for_release"], COLOURS["ok"]),
            ],
        ),
        "<h2>Numbers by state</h2>",
        bar_chart(
            "Numbers by lifecycle state", [(k.lower(), v, COLOURS["muted"]) for k, v in sorted(statuses.items())]
        ),
    ]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1a202c}"
        ".tiles{display:flex;gap:1rem;flex-wrap:wrap}.tile{border-left:6px solid;padding:.5rem 1rem;"
        "background:#f7fafc;min-width:9rem}.tile b{display:block;font-size:1.6rem}.tile span{font-size:.85rem}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #e2e8f0;padding:.3rem .8rem;"
        "text-align:right}td:first-child,th:first-child{text-align:left}figcaption{font-weight:600;margin:.5rem 0}"
    )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>Compliance report</title><style>{style}</style>"
        f"<h1>Subscriber ledger compliance report</h1><p>As of ledger position {read_models.position():,}, "
        f"generated {now:%Y-%m-%d %H:%M} UTC. Quarantine {policy.quarantine_days} days; required holders "
        f"{', '.join(policy.required_holders)}; erasure due {policy.erasure_retention_days} days after the last "
        f"tenure.</p><div class=tiles>{tile_html}</div>{''.join(sections)}</html>"
    )


@one_line_errors("compliance_report")
def main(argv: list[str] | None = None) -> int:
    """Write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--policy", type=Path, help="policy file, as given to the server")
    parser.add_argument("-o", "--output", type=Path, default=Path("compliance.html"), help="HTML file to write")
    args = parser.parse_args(argv)
    store = existing_store(args.db)
    policy = Policy.from_toml(args.policy) if args.policy else Policy()
    views = ViewsDatabase.for_store(store)
    if not views.exists():
        raise RunFailed(f"no read models at {views.sqlite_path}; start the server or `ledger project` once")
    read_models = ReadModels(views)
    try:
        page = build(read_models, policy, datetime.now(UTC))
    finally:
        read_models.close()
    with output_file(args.output) as out:
        out.write(page)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
