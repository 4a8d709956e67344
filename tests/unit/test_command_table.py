"""Every LifecycleService RPC is a command end to end: its dataclass (named after it), its handler, its
entry in the table the edges use, its wire translation, its servicer method and its ImportCommand field."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields, is_dataclass
from pathlib import Path

from eventsourcing.application import Application

from ledger.application import commands
from ledger.application.app import LedgerApplication
from ledger.application.commands import Command
from ledger.application.handlers import COMMANDS
from ledger.server.importer import RPC_OF_FIELD
from ledger.server.lifecycle import LifecycleServicer
from ledger.server.lifecycle_commands import RPCS
from ledger.v1 import lifecycle_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["LifecycleService"]
# RPCs that are not one command: ImportCommands carries the others.
NOT_COMMANDS = {"ImportCommands"}
# Commands no client sends: the erasure pass runs CompleteErasure.
INTERNAL = {"CompleteErasure"}
ENVELOPE = {"request_id", "occurred_at"}


def command_rpcs() -> list[str]:
    return [m.name for m in SERVICE.methods if m.name not in NOT_COMMANDS]


def test_every_rpc_has_its_dataclass_handler_and_table_entry() -> None:
    rpcs = command_rpcs()
    assert len(rpcs) == 15
    for rpc in rpcs:
        cls = getattr(commands, rpc)
        assert is_dataclass(cls) and issubclass(cls, Command), rpc
        assert cls.__dataclass_params__.frozen, rpc  # type: ignore[attr-defined]
        entry = COMMANDS[rpc]
        assert entry.command is cls
        handler_params = list(inspect.signature(entry.handle).parameters)
        assert handler_params == ["command", "uow", "ctx"], rpc
    assert set(COMMANDS) == set(rpcs) | INTERNAL
    assert all(name == entry.command.__name__ for name, entry in COMMANDS.items())


def test_every_rpc_has_its_wire_translation_servicer_method_and_import_field() -> None:
    import_fields = {f.message_type.name: f.name for f in pb.ImportCommand.DESCRIPTOR.oneofs_by_name["command"].fields}
    result_fields = {
        f.message_type.name: f.name for f in pb.ImportCommandResult.DESCRIPTOR.oneofs_by_name["response"].fields
    }
    for method in SERVICE.methods:
        if method.name in NOT_COMMANDS:
            continue
        assert method.name in RPCS
        assert method.name in vars(LifecycleServicer), f"LifecycleServicer.{method.name} is not written"
        field = import_fields[method.input_type.name]
        assert RPC_OF_FIELD[field] == method.name
        assert result_fields[method.output_type.name] == field
    assert set(RPCS) == set(command_rpcs())


def test_a_commands_fields_are_its_requests_fields() -> None:
    # The request's fields, less the envelope, are the command's: what the fingerprint covers.
    for rpc in command_rpcs():
        request = SERVICE.methods_by_name[rpc].input_type
        wire = {f.name for f in request.fields} - ENVELOPE
        assert wire == {f.name for f in fields(COMMANDS[rpc].command)}, rpc


def test_the_pipeline_and_units_of_work_know_the_ledger_by_its_protocol_only() -> None:
    assert LedgerApplication.__bases__ == (Application,)  # no chain of command mixins
    root = Path(commands.__file__).parent
    for module in ("pipeline.py", "unit_of_work.py", "handlers.py", "commands.py"):
        tree = ast.parse((root / module).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "ledger.application.app" not in imported, module
