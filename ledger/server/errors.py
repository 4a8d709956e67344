"""One interceptor maps the ledger's errors to gRPC status codes with google.rpc details; the edge's own
refusals (no credentials, a role missing, a limit reached) are defined here, beside it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import grpc
from eventsourcing.persistence import OperationalError, PersistenceError
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.domain import errors
from projections.errors import ReadModelBehind, ReadModelMismatch, ReadModelRebuilding

log = logging.getLogger(__name__)
DOMAIN = "ledger.v1"
# A status travels in trailers that a client caps at 16 KiB (its default metadata limit): a BadRequest keeps
# the first violations, then one that counts the rest, and each text and the message are shortened to fit.
MAX_FIELD_VIOLATIONS = 50
MAX_VIOLATION_TEXT = 120
MAX_MESSAGE_VIOLATIONS = 5


class EdgeRefusal(errors.LedgerError):
    """Base class of the edge's own refusals, answered before a servicer runs: each names its status code
    and its ErrorInfo reason."""

    code: ClassVar[int]
    reason: ClassVar[str]


class Unauthenticated(EdgeRefusal):
    """Raised when a call carries no valid credentials."""

    code = code_pb2.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(EdgeRefusal):
    """Raised when the caller's roles do not allow the call."""

    code = code_pb2.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class ResourceExhausted(EdgeRefusal):
    """Raised when a limit on concurrent streams or request size is reached."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


def refusal_status(exc: EdgeRefusal) -> status_pb2.Status:
    """The google.rpc.Status of one of the edge's refusals."""
    return _status(exc.code, str(exc), error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN))


async def refuse(context: grpc.aio.ServicerContext, exc: EdgeRefusal) -> None:
    """End the call with one of the edge's refusals (raises, as ``abort_with_status`` does)."""
    await context.abort_with_status(rpc_status.to_status(refusal_status(exc)))


def to_status(exc: BaseException) -> status_pb2.Status | None:
    """The google.rpc.Status for a ledger error, or None for an unexpected exception."""
    if isinstance(exc, errors.InvalidArgument):
        bad, message = bad_request(exc.violations, exc.field_reasons)
        info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN)
        return _status(code_pb2.INVALID_ARGUMENT, message, bad, info)
    if isinstance(exc, errors.RuleViolation):
        info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata)
        return _status(code_pb2.FAILED_PRECONDITION, str(exc), info)
    if isinstance(exc, errors.NotFound):
        info = error_details_pb2.ErrorInfo(reason=f"{exc.kind.upper()}_NOT_FOUND", domain=DOMAIN)
        resource = error_details_pb2.ResourceInfo(resource_type=exc.kind, resource_name=exc.key)
        return _status(code_pb2.NOT_FOUND, str(exc), info, resource)
    if isinstance(exc, errors.RequestIdReused):
        info = error_details_pb2.ErrorInfo(reason="REQUEST_ID_REUSED", domain=DOMAIN)
        return _status(code_pb2.ALREADY_EXISTS, str(exc), info)
    if isinstance(exc, errors.ConcurrencyConflict):
        info = error_details_pb2.ErrorInfo(reason="CONCURRENCY_CONFLICT", domain=DOMAIN)
        return _status(code_pb2.ABORTED, str(exc), info)
    if isinstance(exc, EdgeRefusal):
        return refusal_status(exc)
    if isinstance(exc, ReadModelBehind):
        info = error_details_pb2.ErrorInfo(
            reason="READ_MODEL_BEHIND",
            domain=DOMAIN,
            metadata={"min_position": str(exc.wanted), "applied_position": str(exc.applied)},
        )
        return _status(code_pb2.UNAVAILABLE, str(exc), info)
    if isinstance(exc, ReadModelRebuilding):
        metadata = {"view": exc.view, "position": str(exc.position)}
        if exc.head:
            metadata["head_position"] = str(exc.head)
        info = error_details_pb2.ErrorInfo(reason="READ_MODEL_REBUILDING", domain=DOMAIN, metadata=metadata)
        return _status(code_pb2.UNAVAILABLE, str(exc), info)
    if isinstance(exc, ReadModelMismatch):
        info = error_details_pb2.ErrorInfo(reason="READ_MODEL_MISMATCH", domain=DOMAIN)
        return _status(code_pb2.UNAVAILABLE, str(exc), info)
    if isinstance(exc, errors.EventUndecodable):
        log.error("stored event at position %d (stream %s, version %d) does not decode", exc.position,
                  exc.stream_id, exc.version)  # fmt: skip
        metadata = {"position": str(exc.position), "stream_id": exc.stream_id, "version": str(exc.version)}
        info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata)
        return _status(code_pb2.DATA_LOSS, str(exc), info)
    if isinstance(exc, NotImplementedError):
        return _status(code_pb2.UNIMPLEMENTED, "this RPC is not implemented in this version")
    if isinstance(exc, (OperationalError, PersistenceError)) or _is_database_outage(exc):
        log.warning("store unavailable: %s", exc)
        info = error_details_pb2.ErrorInfo(reason="STORE_UNAVAILABLE", domain=DOMAIN)
        return _status(code_pb2.UNAVAILABLE, "the event store is unavailable; retry", info)
    return None


def bad_request(
    violations: list[tuple[str, str]], reasons: dict[str, str] | None = None
) -> tuple[error_details_pb2.BadRequest, str]:
    """A BadRequest and a status message for ``violations``, both small enough for a status's trailers:
    the first ``MAX_FIELD_VIOLATIONS``, then one more on the common parent field counting the rest."""
    kept = [(_short(f), _short(d)) for f, d in violations[:MAX_FIELD_VIOLATIONS]]
    rest = len(violations) - len(kept)
    if rest > 0:
        parent = _common_parent([f for f, _ in violations]) or "request"
        kept.append((parent, f"and {rest} more violations, not listed (at most {MAX_FIELD_VIOLATIONS} are)"))
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d, reason=(reasons or {}).get(f, ""))
            for f, d in kept
        ]
    )
    message = "; ".join(f"{f}: {d}" for f, d in kept[:MAX_MESSAGE_VIOLATIONS])
    if len(violations) > MAX_MESSAGE_VIOLATIONS:
        message += f"; and {len(violations) - MAX_MESSAGE_VIOLATIONS} more (see the BadRequest detail)"
    return bad, message


def _short(text: str) -> str:
    return text if len(text) <= MAX_VIOLATION_TEXT else text[: MAX_VIOLATION_TEXT - 1] + "…"


def _common_parent(fields: list[str]) -> str:
    """``queries`` for ``queries[0].number`` and ``queries[7].since_date``; empty when they share none."""
    roots = {f.split("[", 1)[0].split(".", 1)[0] for f in fields}
    return roots.pop() if len(roots) == 1 else ""


def _is_database_outage(exc: BaseException) -> bool:
    """A read-model or key-store database that is down, restarting or locked (retryable)."""
    import sqlite3

    import psycopg

    return isinstance(exc, (psycopg.OperationalError, sqlite3.OperationalError))


def _status(code: int, message: str, *details: Any) -> status_pb2.Status:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    return status_pb2.Status(code=code, message=message, details=packed)


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    status = to_status(exc)
    if context.done() and (status is not None or isinstance(exc, grpc.RpcError)):
        # The client cancelled the call or went away (Ctrl-C in a batch job): nobody to answer, nothing wrong.
        # An unexpected exception is still logged below, whether or not anyone waits for the answer.
        log.debug("call ended by the client: %s", type(exc).__name__)
        return
    if status is None:
        log.exception("unexpected error", exc_info=exc)
        status = _status(code_pb2.INTERNAL, "internal error; it was logged")
    await context.abort_with_status(rpc_status.to_status(status))


class Malformed:
    """Stands in for a request that did not parse (protobuf bytes, or JSON on the HTTP port), so the call
    fails with INVALID_ARGUMENT once authenticated and counted, as any other bad request."""

    def __init__(
        self, problem: str, violations: list[tuple[str, str]] | None = None, reason: str | None = None
    ) -> None:
        self.problem, self.reason = problem, reason
        self.violations = violations or [("request", f"is not a valid protobuf message: {problem}")]

    def error(self) -> errors.InvalidArgument:
        """The INVALID_ARGUMENT the call ends with."""
        return errors.InvalidArgument(self.violations, self.reason)


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:
            return Malformed(type(e).__name__)

    return parse


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            raise request.error()
        yield request


class MethodInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that wraps each method's handler once, on its first call, and serves the wrapped
    handler from then on. Interceptors registered after one run inside that first continuation, so they
    too wrap per method, not per call. Unknown methods are not remembered."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler, wrapped once and remembered."""
        method = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        self._handlers[method] = wrapped = self.wrap(method, handler)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` as this interceptor serves ``method``."""
        raise NotImplementedError


class ErrorInterceptor(MethodInterceptor):
    """Turns exceptions raised by servicers into statuses; nothing escapes as an unknown error.
    Requests that do not parse are answered INVALID_ARGUMENT rather than gRPC's own INTERNAL."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """Wrap the behaviour of the handler, and its request parsing."""
        handler = handler._replace(request_deserializer=_safe(handler.request_deserializer))
        return wrap_handler(handler, _wrap_unary, _wrap_stream)


Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_handler(handler: grpc.RpcMethodHandler, unary: Wrapper, stream: Wrapper) -> grpc.RpcMethodHandler:
    """Replace a handler's behaviour: ``unary`` wraps those that return one response, ``stream`` those that
    yield responses."""
    if handler.unary_unary:
        return handler._replace(unary_unary=unary(handler.unary_unary))
    if handler.stream_unary:
        return handler._replace(stream_unary=unary(handler.stream_unary))
    if handler.unary_stream:
        return handler._replace(unary_stream=stream(handler.unary_stream))
    if handler.stream_stream:
        return handler._replace(stream_stream=stream(handler.stream_stream))
    return handler


def _unwrap(request: Any) -> Any:
    if isinstance(request, Malformed):
        raise request.error()
    if hasattr(request, "__aiter__"):
        return _checked(request)
    return request


def _wrap_unary(behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(_unwrap(request), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def _wrap_stream(behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(_unwrap(request), context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper
