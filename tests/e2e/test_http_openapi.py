"""``/openapi.json`` of a live ``ledger serve --http``, tested by schemathesis (property-based): every
response is documented, none is a server error, every body matches its schema."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stubs
from tests.procs import ROOT, Serve, free_port

STORES = ("sqlite", "postgres")
EXAMPLE = "+8613800138000"  # the phoneNumber example of the CAMARA schemas: a line that exists, for 200s


@pytest.fixture
def db(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_kind == "postgres":
        from tests.pgserver import new_database

        return new_database(request.getfixturevalue("pg_admin_url"))
    return f"sqlite:///{tmp_path}/ledger.db"


def test_openapi_describes_what_is_served(db: str, tmp_path: Path) -> None:
    http = f"127.0.0.1:{free_port()}"
    server = Serve(db, extra=("--http", http), log=tmp_path / "server.log")
    try:
        Stubs(server.channel).onboard(EXAMPLE, 1)
        spec = httpx.get(f"http://{http}/openapi.json", timeout=30).json()
        assert spec["openapi"] == "3.1.0"
        camara = {"/number-recycling/v0.2/check", "/sim-swap/v2/retrieve-date", "/sim-swap/v2/check"}
        assert camara < set(spec["paths"]) and "/openapi.json" in spec["paths"]
        error = spec["paths"]["/number-recycling/v0.2/check"]["post"]["responses"]["422"]
        assert "MISSING_IDENTIFIER" in str(error)
        out = subprocess.run(
            [str(ROOT / ".venv/bin/st"), "run", f"http://{http}/openapi.json", "--checks",
             "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
             "response_headers_conformance",
             "--max-time", "40", "--max-examples", "100", "--workers", "2", "--seed", "25",
             "--generation-database", "none", "--no-color", "--wait-for-schema", "30"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
    finally:
        assert server.stop() == 0
    assert out.returncode == 0, out.stdout[-6000:]
    generated = next(line for line in out.stdout.splitlines() if " generated, " in line)
    print(generated.strip())
    # Bound by time (40 s per store), so the count depends on the machine: about 1,000-3,000 cases (40-120 per
    # route) on two cores; at least every route's examples and coverage cases, on any machine.
    assert int(generated.split()[0]) >= 26 * 10, generated
    assert "Traceback" not in (tmp_path / "server.log").read_text()
