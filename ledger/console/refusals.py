"""A refused call in words: the status code, the reason, the fields, and what to do; and its exit code.

Exit 1 for a refusal the server gave (a reason, a bad field, a number it does not know); exit 3 when no
server answered (nothing listens at the target, TLS does not match, the call timed out before an answer).
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

EXIT_ANSWERED, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

WHAT_TO_DO = {
    "UNAUTHENTICATED": "pass a token the server's --auth file lists: --token TOKEN or LEDGER_TOKEN",
    "PERMISSION_DENIED": "use a token with the role named above (`ledger token --role ...` makes one)",
    "NOT_FOUND": "check what you asked for: a number in E.164 form (+8613800138000), or the exact request id",
    "INVALID_ARGUMENT": "correct the values named above and run the command again",
    "OUT_OF_RANGE": "correct the values named above and run the command again",
    "FAILED_PRECONDITION": "the ledger's rules refuse this now; the reason above says which (docs/api.md lists them)",
    "RESOURCE_EXHAUSTED": "the server's call budget is spent for now: wait a moment and run the command again",
    "UNAVAILABLE": "retry in a moment; `ledger status` shows the read models' progress",
    "DEADLINE_EXCEEDED": "the server did not answer in time; `ledger status` shows whether it is behind",
    "UNIMPLEMENTED": "this server is an older release without this call: upgrade it",
    "ABORTED": "a concurrent change got there first: run the command again",
    "ALREADY_EXISTS": "this request id was used before for something else: use a new one",
    "NUMBER_NOT_FOUND": "check the number (E.164, such as +8613800138000): this ledger never provisioned it",
    "REQUEST_NOT_FOUND": "check the request id (exactly as the command was sent; reads record none)",
    "READ_MODEL_MISMATCH": "an operator rebuilds the read models: ledger project --rebuild",
}


def reachable(error: grpc.RpcError) -> bool:
    """Whether a server answered: an UNAVAILABLE without details is the channel's own (no server, no
    handshake); the server's own UNAVAILABLE (a read model rebuilding) carries an ErrorInfo."""
    code = error.code() if isinstance(error, grpc.Call) else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return _status(error) is not None
    return code not in (None, grpc.StatusCode.DEADLINE_EXCEEDED) or _status(error) is not None


def exit_code(error: grpc.RpcError) -> int:
    """1 for a refusal the server gave, 3 when no server answered."""
    return EXIT_REFUSED if reachable(error) else EXIT_UNREACHABLE


def in_words(error: grpc.RpcError, target: str) -> list[str]:
    """The lines that tell a person what went wrong and what to do."""
    if not isinstance(error, grpc.Call):
        return [f"the call failed: {error}"]
    code = error.code()
    details = _first_line(error.details())
    if not reachable(error):
        return [
            f"no ledger server answers at {target} ({code.name}: {details})",
            "what to do: start one (ledger serve), or pass --target HOST:PORT / LEDGER_TARGET;",
            "  a server with TLS needs --tls-ca (and --tls-cert/--tls-key if it asks for a client certificate)",
        ]
    lines = [f"refused: {code.name}: {details}"]
    status = _status(error)
    reason, fields = "", list[str]()
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            extra = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
            lines.append(f"  reason: {info.reason}" + (f" ({extra})" if extra else ""))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(f"  field {v.field}: {v.description}" for v in bad.field_violations)
    todo = WHAT_TO_DO.get(reason) or WHAT_TO_DO.get(code.name) or "see the server's log for this call"
    return [*lines, *fields, f"what to do: {todo}"]


def _status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # details that do not match the status: not the ledger's
        return None


def _first_line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0] if stripped else "no details"
