"""The HTTP API's curl session, read from the docs (``docs/api.md``, heading ``## HTTP API``) and run
as written against a live ``ledger serve --http`` on a fresh ledger: each answer must be what the docs show
after ``# ->`` (the HTTP status, then fields of the JSON body)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.test_readme_session import match
from tests.procs import Serve, free_port

ROOT = Path(__file__).resolve().parents[2]
DOC, HEADING = ROOT / "docs" / "api.md", "## HTTP API"


def session() -> tuple[str, list[tuple[str, str]]]:
    """(preamble, [(command, expectation)]) of the first ``sh`` block under the heading."""
    text = DOC.read_text()
    found = re.search(r"```sh\n(.*?)```", text[text.index(HEADING) :], re.S)
    assert found, f"no sh block under {HEADING}"
    lines = found.group(1).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("post "))
    calls: list[tuple[str, str]] = []
    command: list[str] = []
    for line in lines[first:]:
        if line.startswith("# -> "):
            assert command, f"expectation without a call: {line}"
            calls.append(("\n".join(command), line.removeprefix("# -> ").strip()))
            command = []
        elif line.strip():
            command.append(line)
    assert not command, f"a call without an expected answer: {command}"
    return "\n".join(lines[:first]), calls


def test_the_http_session_is_true_on_a_fresh_ledger(tmp_path: Path) -> None:
    preamble, calls = session()
    assert len(calls) >= 10 and "curl" in preamble
    http = free_port()
    server = Serve(f"sqlite:///{tmp_path}/ledger.db", extra=("--http", f"127.0.0.1:{http}"))
    captured: dict[str, Any] = {}
    try:
        for command, expectation in calls:
            script = f"{preamble}\n{command}".replace("127.0.0.1:8080", f"127.0.0.1:{http}")
            for name, value in captured.items():
                script = script.replace(name, str(value))
            result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
            body, _, status = result.stdout.strip().rpartition(" ")
            want_status, _, want_body = expectation.partition(" ")
            try:
                assert result.returncode == 0, result.stderr
                assert status == want_status
                match(json.loads(want_body), json.loads(body), captured)
            except AssertionError as e:
                raise AssertionError(f"{command}\n-> {result.stdout}{result.stderr}\n{e}") from e
    finally:
        assert server.stop() == 0
