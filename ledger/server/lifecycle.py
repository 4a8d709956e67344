"""LifecycleService: translates requests into application commands and results into responses."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from ledger.server.auth import actor_of
from ledger.server.importer import Importer
from ledger.server.lifecycle_commands import run_command
from ledger.v1 import lifecycle_service_pb2 as pb
from ledger.v1 import lifecycle_service_pb2_grpc

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.server.bridge import Blocking


class LifecycleServicer(lifecycle_service_pb2_grpc.LifecycleServiceServicer):
    """The operator-facing command API."""

    def __init__(self, app: LedgerApplication, blocking: Blocking) -> None:
        self.app = app
        self.blocking = blocking

    def ProvisionNumbers(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Provision numbers as AVAILABLE."""
        return run_command(self.app, "ProvisionNumbers", request, actor_of(context))

    def RegisterSubscriber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Register a subscriber with encrypted personal data."""
        return run_command(self.app, "RegisterSubscriber", request, actor_of(context))

    def VerifyIdentity(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Record an identity verification."""
        return run_command(self.app, "VerifyIdentity", request, actor_of(context))

    def ActivateSim(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Start a tenure."""
        return run_command(self.app, "ActivateSim", request, actor_of(context))

    def SwapSim(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Move a number to a new SIM."""
        return run_command(self.app, "SwapSim", request, actor_of(context))

    def SuspendNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Suspend an active number."""
        return run_command(self.app, "SuspendNumber", request, actor_of(context))

    def ResumeNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Resume a suspended number."""
        return run_command(self.app, "ResumeNumber", request, actor_of(context))

    def DisconnectNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Close a tenure and start quarantine."""
        return run_command(self.app, "DisconnectNumber", request, actor_of(context))

    def ConfirmDataCleared(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Record a holder's clearance of a closed tenure."""
        return run_command(self.app, "ConfirmDataCleared", request, actor_of(context))

    def ReleaseNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Release a quarantined number."""
        return run_command(self.app, "ReleaseNumber", request, actor_of(context))

    def EraseSubscriberData(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Erase a subscriber's personal data by destroying their key."""
        return run_command(self.app, "EraseSubscriberData", request, actor_of(context))

    def PortOutNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """End a tenure by a port to another operator."""
        return run_command(self.app, "PortOutNumber", request, actor_of(context))

    def PortInNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Take in another operator's number."""
        return run_command(self.app, "PortInNumber", request, actor_of(context))

    def ReturnNumber(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Take back a ported-out number its recipient disconnected."""
        return run_command(self.app, "ReturnNumber", request, actor_of(context))

    def RecordDisconnectionReport(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Record a disconnection report issued to a regulator."""
        return run_command(self.app, "RecordDisconnectionReport", request, actor_of(context))

    async def ImportCommands(
        self, request_iterator: AsyncIterator[pb.ImportCommandsRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ImportCommandsResponse]:
        """Apply streamed commands in order, committed in segments; one response per request. The next
        request is awaited on the loop (an import waiting for its client holds no thread)."""
        importer = Importer(self.app, actor_of(context))
        # A request still running when its call is cancelled finishes before the importer is closed.
        turn = threading.Lock()

        def run(request: pb.ImportCommandsRequest) -> pb.ImportCommandsResponse:
            with turn:
                return importer.run(request)

        def close() -> None:
            with turn:
                importer.__exit__(None, None, None)

        await self.blocking.run(importer.__enter__)
        try:
            async for request in request_iterator:
                yield await self.blocking.run(run, request)
        finally:
            # Also when the call is cancelled: the staged events of an unfinished segment are dropped.
            try:
                self.blocking.executor.submit(close)
            except RuntimeError:  # the pool is shut down: nothing runs any more
                close()
