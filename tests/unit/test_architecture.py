"""Imports point one way: the domain knows no transport, database, configuration or environment."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_DOMAIN = (
    "grpc",
    "google.protobuf",
    "sqlite3",
    "psycopg",
    "ledger.v1",
    "ledger.server",
    "ledger.application",
    "ledger.config",
    "ledger.policy",
    "ledger.jurisdictions",
    "ledger.keys",
    "ledger.proofs",
    "ledger.vault",
    "ledger.adapters",
    "os",
)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_domain_imports_no_infrastructure() -> None:
    assert _violations(ROOT / "ledger" / "domain", FORBIDDEN_IN_DOMAIN) == []


def test_domain_reads_no_environment() -> None:
    for path in (ROOT / "ledger" / "domain").rglob("*.py"):
        assert "environ" not in path.read_text(), path


def test_application_does_not_import_the_server() -> None:
    below_the_edge = [
        *sorted((ROOT / "ledger" / "application").glob("*.py")),
        *sorted((ROOT / "ledger" / "adapters").glob("*.py")),
        *sorted((ROOT / "ledger" / "keys").glob("*.py")),
        *(ROOT / "ledger" / m for m in ("bootstrap.py", "integrity.py", "vault.py", "snapshots.py")),
    ]
    for path in below_the_edge:
        names = imports_of(path)
        assert not any(n.startswith(("ledger.server", "grpc", "ledger.v1")) for n in names), path


def test_projections_and_scripts_never_import_the_server() -> None:
    for folder in ("projections", "scripts", "bench"):
        if (ROOT / folder).exists():
            assert _violations(ROOT / folder, ("ledger.server",)) == []


def test_the_commands_for_people_are_clients_of_a_server() -> None:
    """They ask a running server over gRPC, as any client does: nothing of the server or the store."""
    forbidden = ("ledger.server", "ledger.application", "ledger.adapters", "ledger.bootstrap", "projections")
    assert _violations(ROOT / "ledger" / "console", forbidden) == []
    assert not any(n.startswith(forbidden) for n in imports_of(ROOT / "ledger" / "connection.py"))
