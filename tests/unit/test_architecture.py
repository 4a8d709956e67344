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
        *(ROOT / "ledger" / m for m in ("bootstrap.py", "integrity.py", "snapshots.py")),
    ]
    for path in below_the_edge:
        names = imports_of(path)
        assert not any(n.startswith(("ledger.server", "grpc", "ledger.v1")) for n in names), path


def test_projections_and_scripts_never_import_the_server() -> None:
    for folder in ("projections", "scripts", "bench"):
        if (ROOT / folder).exists():
            assert _violations(ROOT / folder, ("ledger.server",)) == []


BELOW_THE_APPLICATION = ("keys", "proofs", "adapters")
ABOVE_THEM = ("ledger.application", "ledger.bootstrap", "ledger.__main__", "ledger.server", "ledger.projection_worker")


def test_keys_proofs_and_adapters_import_neither_the_application_nor_the_wiring() -> None:
    for folder in BELOW_THE_APPLICATION:
        assert _violations(ROOT / "ledger" / folder, ABOVE_THEM) == []


def module_graph() -> dict[str, set[str]]:
    """Every module of ``ledger``, ``projections`` and ``scripts`` with the modules it imports: at run time,
    inside a function or only for the type checker alike (a cycle of any of them ties two concepts)."""
    modules: dict[str, Path] = {}
    for folder in ("ledger", "projections", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[:2] != ("ledger", "v1"):
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def home(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(home(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(home(f"{node.module}.{alias.name}") for alias in node.names)
        graph[module] = {m for m in found if m is not None and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_between_modules() -> None:
    assert cycles(module_graph()) == []


def defined_names(path: Path) -> set[str]:
    """The names a module defines itself (functions, classes, assignments), not those it imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_names_are_imported_from_their_home() -> None:
    """No shim: a name is imported from the module that defines it, not from one that imported it (a
    package's ``__init__`` may gather its modules' names)."""
    homes = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for folder in ("ledger", "projections", "scripts", "bench", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "__init__.py" and "v1" not in p.parts
    }
    found = []
    for folder in ("ledger", "projections", "scripts", "bench", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module in homes:
                    defined = defined_names(homes[node.module])
                    found += [
                        f"{path.relative_to(ROOT)}: {alias.name} from {node.module}"
                        for alias in node.names
                        if alias.name not in defined and f"{node.module}.{alias.name}" not in homes
                    ]
    assert found == []


def test_an_aggregate_is_one_class_in_one_module() -> None:
    """A class is not split across files by inheritance to meet a line count: each aggregate's only base is
    the library's ``Aggregate``, so its commands, queries and appliers are read in one place."""
    from eventsourcing.domain import Aggregate

    from ledger.domain.access import AccessLog
    from ledger.domain.number import Number
    from ledger.domain.subscriber import Subscriber

    for aggregate in (Number, Subscriber, AccessLog):
        assert aggregate.__bases__ == (Aggregate,), aggregate


def test_each_backend_says_what_it_is() -> None:
    """The adapters pick no backend by ``isinstance`` on its classes: each backend's recorder gives its log
    reader, its proof store and the streams its snapshots cover."""
    tree = ast.parse((ROOT / "ledger" / "adapters" / "__init__.py").read_text())
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "isinstance" not in calls

    from ledger.adapters import log_reader, proof_store, snapshot_ids
    from ledger.adapters.memory import ChainedMemoryRecorder, MemoryFactory, MemoryLogReader

    recorder = ChainedMemoryRecorder()
    assert isinstance(log_reader(recorder), MemoryLogReader)
    assert proof_store(recorder) is None
    assert snapshot_ids(recorder, MemoryFactory(env={}).aggregate_recorder("snapshots")) == set()


def test_no_assert_outside_tests() -> None:
    """Code refuses with real errors (an ``assert`` vanishes under ``python -O``) or is typed so that it
    need not check."""
    found: dict[str, int] = {}
    for folder in ("ledger", "projections", "scripts", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            count = sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(path.read_text())))
            if count and "v1" not in path.parts:
                found[path.relative_to(ROOT).as_posix()] = count
    assert found == {}


def test_the_commands_for_people_are_clients_of_a_server() -> None:
    """They ask a running server over gRPC, as any client does: nothing of the server or the store."""
    forbidden = ("ledger.server", "ledger.application", "ledger.adapters", "ledger.bootstrap", "projections")
    assert _violations(ROOT / "ledger" / "console", forbidden) == []
    assert not any(n.startswith(forbidden) for n in imports_of(ROOT / "ledger" / "connection.py"))
