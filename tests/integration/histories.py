"""The synthetic operator history of ``scripts.generate_dataset``, recorded through the application (no
server): the same commands, request ids, derived subscriber and tenure ids and moments as the script's
ImportCommands stream."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.application.commands import ProvisionNumbers
from ledger.application.handlers import COMMANDS
from ledger.application.pipeline import execute
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from scripts.dataset import identifiers as synthetic
from scripts.dataset.histories import number_history, number_of, ported_in

END = datetime(2026, 1, 1, tzinfo=UTC)
ACTOR = "generate_dataset"  # the actor the script's commands record (releases by override name it)


def _filled(command_class: type, values: dict[str, Any]) -> Any:
    """The command with the fields a request leaves unset at their empty values, as the wire gives them."""
    hints = typing.get_type_hints(command_class)
    for f in dataclasses.fields(command_class):
        if f.name not in values:
            hint = str(hints[f.name])
            values[f.name] = "" if hints[f.name] is str else None if "None" in hint else ()
        elif isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return command_class(**values)


def record_dataset(app: Any, numbers: int, seed: int, end: datetime = END, years: float = 3.0) -> None:
    """Record the histories of ``numbers`` numbers of ``seed``, as ``generate_dataset --end`` does."""
    start = end - timedelta(days=365 * years)
    # Numbers ported in from another operator's range enter by PortInNumber, not by provisioning.
    provisioned = [synthetic.msisdn(i) for i in range(numbers) if not ported_in(i, seed)]
    provision = ProvisionNumbers(numbers=tuple(provisioned))
    execute(app, provision, request_id=f"gen{seed}-provision-0", actor=ACTOR, occurred_at=start)
    for i in range(numbers):
        msisdn = number_of(i, seed)
        registered: dict[int, Any] = {}
        for k, cmd in enumerate(sorted(number_history(i, seed, start, end, 90))):
            f = dict(cmd.fields)
            request_id = f"gen{seed}-{i}-{k}"
            person = f.pop("person", None)
            if person is not None:
                registered[person] = Subscriber.id_for_request(request_id)
            if "subscriber" in f:
                f["subscriber_id"] = registered[f.pop("subscriber")]
            if "tenure" in f:
                ordinal = f.pop("tenure")
                if cmd.rpc == "ConfirmDataCleared":
                    f["tenure_id"] = Number.tenure_id_for(msisdn, ordinal + 1)
            command = _filled(COMMANDS[cmd.rpc].command, f)
            execute(app, command, request_id=request_id, actor=ACTOR, occurred_at=cmd.at)
