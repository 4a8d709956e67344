"""ImportCommands: lifecycle commands applied in order, decided in memory, committed in segments.

Each command goes through the same validation and the same handler as its own RPC, so the
same rules hold; what changes is the write: the commands of a segment (up to ``segment_size``, never
beyond one request) are staged and saved in one transaction, and a request is answered only after all
of its commands are committed. A refused command records nothing and does not stop the import. If a
concurrent writer changed a stream the segment used, the flush conflicts and the segment's commands are
applied again one at a time through the ordinary path, with its retries, so every rule is checked
against the state that is really saved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError, OperationalError
from google.rpc import error_details_pb2

from ledger.application.pipeline import is_conflict
from ledger.domain import errors
from ledger.server.errors import to_status
from ledger.server.lifecycle_commands import RPCS, run
from ledger.v1 import lifecycle_service_pb2 as pb

if TYPE_CHECKING:
    from types import TracebackType

    from ledger.application import CommandResult, LedgerApplication

MAX_COMMANDS_PER_REQUEST = 10_000
SEGMENT_SIZE = 1_000

# ImportCommand's oneof field (also ImportCommandResult's) -> the RPC whose request it holds.
RPC_OF_FIELD = {
    field.name: field.message_type.name.removesuffix("Request")
    for field in pb.ImportCommand.DESCRIPTOR.oneofs_by_name["command"].fields
}


def command_error(exc: errors.LedgerError) -> pb.CommandError:
    """The error a command's own RPC would have answered, as a message."""
    status = to_status(exc)
    if status is None:  # every LedgerError has a status; kept total for safety
        return pb.CommandError(code=13, reason="INTERNAL", message=str(exc))
    error = pb.CommandError(code=status.code, message=status.message)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            error.reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                error.field_violations.add(field=v.field, description=v.description)
    return error


class Importer:
    """One ImportCommands stream: keeps the running command index and the stream's staged unit of work."""

    def __init__(self, app: LedgerApplication, actor: str, segment_size: int = SEGMENT_SIZE) -> None:
        self.app = app
        self.actor = actor
        self.segment_size = segment_size
        self.index = 0

    def __enter__(self) -> Importer:
        self.staging = self.app.staged()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.staging.reset()

    def run(self, request: pb.ImportCommandsRequest) -> pb.ImportCommandsResponse:
        """Apply one request's commands; returns their results once all are committed."""
        if len(request.commands) > MAX_COMMANDS_PER_REQUEST:
            raise errors.InvalidArgument([("commands", f"at most {MAX_COMMANDS_PER_REQUEST} commands per request")])
        results = [pb.ImportCommandResult(index=self.index + i) for i in range(len(request.commands))]
        self.index += len(request.commands)
        segment = _Segment()
        self.staging.expect_new_requests(
            [getattr(c, n).request_id for c in request.commands if (n := c.WhichOneof("command")) is not None]
        )
        for i, command in enumerate(request.commands):
            name = command.WhichOneof("command")
            if name is None:
                results[i].error.CopyFrom(
                    command_error(errors.InvalidArgument([("command", "exactly one command must be set")]))
                )
                continue
            message = getattr(command, name)
            results[i].request_id = message.request_id
            if message.request_id in segment.request_ids or len(segment.items) >= self.segment_size:
                self._flush(segment, results)  # a repeated request id must see its first result saved
            segment.request_ids.add(message.request_id)
            segment.items.append((i, name, message))
            try:
                result = run(self.app, RPC_OF_FIELD[name], message, self.actor, self.staging)
            except errors.LedgerError as e:
                results[i].error.CopyFrom(command_error(e))
                if self.staging.dirty():
                    # The refused command changed aggregates in memory before a later rule failed: save
                    # what the segment decided so far and start again from stored state.
                    self._flush(segment, results)
                continue
            if result.staged_at < 0:
                self._respond(results[i], name, result, replayed=True)
            else:
                segment.staged.append((i, name, result))
        self._flush(segment, results)
        return pb.ImportCommandsResponse(results=results)

    def _flush(self, segment: _Segment, results: list[pb.ImportCommandResult]) -> None:
        try:
            recordings = self.staging.flush()
        except (IntegrityError, OperationalError) as e:
            if not is_conflict(e):
                raise
            self._apply_one_by_one(segment, results)
        else:
            for i, name, result in segment.staged:
                position = recordings[result.staged_at].notification.id
                self._respond(results[i], name, replace(result, position=position, staged_at=-1))
        segment.clear()

    def _apply_one_by_one(self, segment: _Segment, results: list[pb.ImportCommandResult]) -> None:
        # Each command again through the ordinary path (immediate units of work, with their retries), then
        # a fresh staged unit: what the old one knew of absent streams may no longer hold.
        try:
            for i, name, message in segment.items:
                result = results[i]
                index, request_id = result.index, result.request_id
                result.Clear()
                result.index, result.request_id = index, request_id
                try:
                    outcome = run(self.app, RPC_OF_FIELD[name], message, self.actor)
                except errors.LedgerError as e:
                    result.error.CopyFrom(command_error(e))
                else:
                    self._respond(result, name, outcome)
        finally:
            self.staging = self.app.staged()

    @staticmethod
    def _respond(result: pb.ImportCommandResult, name: str, outcome: CommandResult, replayed: bool = False) -> None:
        getattr(result, name).CopyFrom(RPCS[RPC_OF_FIELD[name]].respond(outcome))
        result.replayed = replayed or outcome.replayed


class _Segment:
    """The commands since the last flush."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str, Any]] = []
        self.staged: list[tuple[int, str, CommandResult]] = []
        self.request_ids: set[str] = set()

    def clear(self) -> None:
        self.items.clear()
        self.staged.clear()
        self.request_ids.clear()
