"""Interceptors that wrap what a method does, once per method: the handler a method resolves to is the
same object call after call (the interceptors inside them wrap per method), so its wrapped form is kept;
a handler made for one call (a refusal's) is wrapped for that call."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behaviour = Callable[..., Any]


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that wraps each method's handler (``wrap``) and keeps the result per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler, wrapped."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self.wrap(method, handler)
        if known is None:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    @abstractmethod
    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` of ``method`` (``/package.Service/Method``) with its behaviour wrapped."""


def wrap_behaviour(
    handler: grpc.RpcMethodHandler,
    one: Callable[[Behaviour], Behaviour],
    many: Callable[[Behaviour], Behaviour],
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped by ``one`` where the call answers once (unary and client
    stream) and by ``many`` where it streams its answers."""
    if handler.unary_unary:
        return handler._replace(unary_unary=one(handler.unary_unary))
    if handler.stream_unary:
        return handler._replace(stream_unary=one(handler.stream_unary))
    if handler.unary_stream:
        return handler._replace(unary_stream=many(handler.unary_stream))
    if handler.stream_stream:
        return handler._replace(stream_stream=many(handler.stream_stream))
    return handler


def status_name(context: grpc.aio.ServicerContext) -> str:
    """The name of the status a call ended with (``OK`` when none was set), as the interceptors report it."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    try:
        return grpc.StatusCode(code).name if not isinstance(code, int) else _BY_NUMBER.get(code, "UNKNOWN")
    except ValueError:
        return "UNKNOWN"


_BY_NUMBER = {c.value[0]: c.name for c in grpc.StatusCode}
