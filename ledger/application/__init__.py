"""The application layer: lifecycle commands as data (``commands``), how each is decided and the table
of them by RPC name (``handlers``), the pipeline that runs them with idempotency and retries
(``pipeline.execute``), units of work for immediate and staged writes (``unit_of_work``), compliance reads
(``reads``) and the public feed (``feed``).

``LedgerApplication`` is the entry point; ``Clock`` is how it reads the time."""

from __future__ import annotations

from ledger.application.app import LedgerApplication, SystemClock
from ledger.application.unit_of_work import Clock, CommandResult, StagedUnitOfWork

__all__ = ["Clock", "CommandResult", "LedgerApplication", "StagedUnitOfWork", "SystemClock"]
