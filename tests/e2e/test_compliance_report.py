"""The compliance report answers an analyst's questions, and renders in headless Chromium without a console
message (a screenshot is kept for a person to look at)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import compliance_report, generate_dataset

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]


def render(page: Path, screenshot: Path, tmp_path: Path) -> list[str]:
    """Render ``page`` headless, write a screenshot; returns the console messages Chromium logged."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1250,5200",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line or "net::ERR" in line]


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: ./dev test installs it (apt-get install chromium)")
    return CHROMIUM


def test_console_messages_are_seen(chromium: str, tmp_path: Path) -> None:
    # The check below would pass for nothing if Chromium's console lines were not recognised.
    page = tmp_path / "noisy.html"
    page.write_text('<!doctype html><p>x</p><script>console.error("report-check-canary")</script>')
    messages = render(page, tmp_path / "noisy.png", tmp_path)
    assert any("report-check-canary" in m for m in messages)


@pytest.mark.timeout(300)
def test_report_answers_the_analyst_and_renders_cleanly(server, settings, chromium: str, tmp_path: Path) -> None:
    stubs, app = server
    args = ["--target", stubs.target, "--numbers", "200", "--years", "3", "--seed", "7", "--end", "2026-01-01"]
    assert generate_dataset.main([*args, "--no-progress"]) == 0
    assert stubs.projector is not None and stubs.projector.wait_for(app.reader.max_position(), 60)
    report = tmp_path / "report.html"
    assert compliance_report.main(["--db", f"sqlite:///{settings.store.sqlite_path}", "-o", str(report)]) == 0
    text = report.read_text()
    assert not (tmp_path / "report.html.partial").exists()
    # Offline: no script, nothing fetched.
    assert "<script" not in text and "http://" not in text and "https://" not in text
    # Period covered and a monthly trend over it.
    period = re.search(r"Period covered: <b>(\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)</b>", text)
    assert period and "2023-01" <= period.group(1) < period.group(2) <= "2026-01-01"
    assert "Monthly trend" in text and "<polyline" in text
    for series in ("activations", "verifications", "real-name violations", "disconnections", "recycled numbers"):
        assert f"<th>{series}</th>" in text
    # Violating numbers with tenure, dates, the overriding actor and the reason.
    violations = _section(text, "Clearance violations")
    assert "+86139" in violations and "aging backlog" in violations and "generate_dataset" in violations
    assert re.search(r"<td>#\d+ [0-9a-f]{8}</td>", violations)
    # Subscribers due for erasure with their last tenure's end; blockers by holder and for how long.
    erasures = _section(text, "Subscribers due for erasure")
    assert re.search(r"<td>[0-9a-f]{32}</td><td>\d+</td><td>\d{4}-\d\d-\d\d</td>", erasures)
    blocked = _section(text, "Quarantined numbers held back")
    assert "longest wait (days)" in blocked and re.search(r"<td>(crm|billing|voicemail)</td><td>\d+</td>", blocked)
    # Rates are drawn on an axis scaled to the data, not 0-100%.
    rates = _section(text, "Real-name verification by channel")
    assert ">100.0%<" not in rates.split("Numbers in service whose holder")[0]
    assert "Violation rate of the worst agents" in text
    screenshot = tmp_path / "report.png"
    assert render(report, screenshot, tmp_path) == []
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("REPORT_SCREENSHOT"):  # to look at it: REPORT_SCREENSHOT=report.png pytest ...
        shutil.copy(screenshot, os.environ["REPORT_SCREENSHOT"])


def _section(text: str, heading: str) -> str:
    start = text.index(f"<h2>{heading}")
    end = text.find("<h2>", start + 4)
    return text[start : end if end > 0 else len(text)]
