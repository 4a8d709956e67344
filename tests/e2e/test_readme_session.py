"""The client sessions shown in the README and the manual, read from the markdown itself, run with
``buf curl`` against a live server on a fresh ledger: every answer must be what the page shows after
``# ->``.

A session is the first ``sh`` block under each of its headings, in order (the later blocks continue the
first one's session on the same server). Expectations: a JSON object whose fields must be in the answer
with these values (``"..."`` any value, ``"<name>"`` a value captured the first time and pasted into
later calls), ``error CODE REASON`` (a refusal with that code and ``google.rpc.ErrorInfo`` reason), or
``types A B ...`` (a stream whose events have these types, in order).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.rpc import error_details_pb2

from tests.e2e.test_cli_reflection import Server, free_port
from tests.markdown import blocks

ROOT = Path(__file__).resolve().parents[2]
# Each session: the (file, heading) of each of its blocks, in the order they run on one fresh server.
SESSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "readme": (("README.md", "## A session with a client"),),
    "api": (
        ("docs/api.md", "## A session with a client"),
        ("docs/api.md", "## Recycling checks and read models"),
        ("docs/api.md", "## SIM swap answers"),
    ),
    "identity": (("docs/api.md", "## Identity questions"),),
}
RUN = SESSIONS


def session_blocks(name: str) -> list[str]:
    """The first ``sh`` block under each of a session's headings, in order."""
    found = []
    for path, heading in RUN[name]:
        under = [b.body for b in blocks(path) if b.heading == heading and b.lang == "sh"]
        assert under, f"no sh block under {heading} in {path}"
        found.append(under[0])
    return found


def steps(blocks: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """(preamble, [(command, expectation)]): the lines before the first call, then each call with its ``# ->``."""
    lines = "\n".join(blocks).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("$CALL"))
    preamble = "\n".join(lines[:first])
    found: list[tuple[str, str]] = []
    command: list[str] = []
    for line in lines[first:]:
        if line.startswith("# -> "):
            assert command, f"expectation without a call: {line}"
            found.append(("\n".join(command), line.removeprefix("# -> ").strip()))
            command = []
        elif line.strip() and not line.startswith("#"):
            command.append(line)
    assert not command, f"a call without an expected answer: {command}"
    return preamble, found


def match(expected: Any, actual: Any, captured: dict[str, Any], where: str = "") -> None:
    """Assert that ``actual`` has everything ``expected`` shows."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing in {actual}"
            match(value, actual[key], captured, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, captured, f"{where}[{i}]")
    elif expected == "...":
        return
    elif isinstance(expected, str) and re.fullmatch(r"<\w+>", expected):
        if expected in captured:
            assert actual == captured[expected], f"{where}: {actual!r} is not the {expected} seen before"
        else:
            captured[expected] = actual
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def json_values(text: str) -> list[Any]:
    """Every JSON value printed one after another (a streaming call prints one per message)."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        values.append(value)
    return values


def check(expectation: str, result: subprocess.CompletedProcess[str], captured: dict[str, Any]) -> None:
    """Assert one call's answer against its ``# ->`` line."""
    if expectation.startswith("error "):
        _, code, reason = expectation.split()
        assert result.returncode != 0, result.stdout
        (status,) = json_values(result.stderr)
        assert status["code"] == code, status
        infos = [d for d in status.get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
        value = infos[0]["value"]
        info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
        assert info.reason == reason, info
        return
    assert result.returncode == 0, result.stderr
    if expectation.startswith("types "):
        types = [m["event"]["type"] for m in json_values(result.stdout)]
        assert types == expectation.split()[1:]
        return
    (answer,) = json_values(result.stdout)
    match(json.loads(expectation), answer, captured)


@pytest.mark.parametrize("name", RUN)
def test_session_blocks_are_found_and_use_buf_curl(name: str) -> None:
    preamble, found = steps(session_blocks(name))
    assert "buf curl --protocol grpc --http2-prior-knowledge" in preamble
    assert "source .venv/bin/activate" in preamble
    assert len(found) >= 6
    for path in {path for path, _ in RUN[name]}:
        assert not re.search(r"^grpcurl ", (ROOT / path).read_text(), re.M)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", RUN)
def test_the_session_is_true_on_a_fresh_ledger(tmp_path: Path, name: str) -> None:
    preamble, found = steps(session_blocks(name))
    port = free_port()
    server = Server(tmp_path, port)
    captured: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    try:
        for command, expectation in found:
            script = f"{preamble}\n{command}".replace("127.0.0.1:50051", f"127.0.0.1:{port}")
            for placeholder, value in captured.items():
                script = script.replace(placeholder, str(value))
            missing = [n for n in re.findall(r"<\w+>", command) if n not in captured]
            assert not missing, f"{command} uses {missing}, which no earlier answer gave"
            result = subprocess.run(
                ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
            )
            try:
                check(expectation, result, captured)
            except AssertionError as e:
                raise AssertionError(f"{command}\n-> {result.stdout}{result.stderr}\n{e}") from e
    finally:
        assert server.stop() == 0
