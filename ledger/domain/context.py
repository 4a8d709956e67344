"""Who, when and which request: the facts every command records with its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Context:
    """The actor, request and time of one command; passed into every aggregate command."""

    actor: str
    request_id: str
    occurred_at: datetime

    def fields(self) -> dict[str, Any]:
        """The context as event fields."""
        return {"occurred_at": self.occurred_at, "actor": self.actor, "request_id": self.request_id}
