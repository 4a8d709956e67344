"""How the ledger's processes log: plain text for a person, or one JSON object per line for a log store
(``--log-format json`` / ``LEDGER_LOG_FORMAT=json``).

In JSON every line the process writes to stderr is an object: Python warnings go through logging, uvicorn's
loggers through the same handler, and gRPC's C core (which writes to stderr on its own) is told to write
nothing. An exception is one ``exc_info`` field.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord carries; anything else on a record came as ``extra`` and is a field of the line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (RFC 3339 in UTC, with its ``+00:00`` offset), ``level``,
    ``logger``, ``message``, the record's extra fields, and ``exc_info`` (the traceback as text) when it
    has one."""

    def __init__(self) -> None:
        super().__init__()
        self._second, self._prefix = -1, ""

    def _time(self, created: float) -> str:
        # The date and time to the second are formatted once a second (datetime's isoformat costs more
        # than the rest of an access line).
        second = int(created)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


def log_format(given: str | None) -> str:
    """The format asked for (``--log-format``, else ``LEDGER_LOG_FORMAT``, else text)."""
    chosen = (given or os.environ.get("LEDGER_LOG_FORMAT") or "text").strip().lower()
    if chosen not in FORMATS:
        from ledger.policy import ConfigError

        raise ConfigError(f"--log-format / LEDGER_LOG_FORMAT must be text or json, got {chosen!r}")
    return chosen


def quiet_grpc_for_json(argv: list[str]) -> None:
    """In JSON mode (``--log-format json`` in ``argv``, else ``LEDGER_LOG_FORMAT``), tell gRPC's C core to
    write nothing of its own to stderr (its lines are not JSON). It reads this once, when ``grpc`` is
    imported, so this runs before anything imports it."""
    given = None
    for i, arg in enumerate(argv):
        if arg == "--log-format" and i + 1 < len(argv):
            given = argv[i + 1]
        elif arg.startswith("--log-format="):
            given = arg.partition("=")[2]
    if (given or os.environ.get("LEDGER_LOG_FORMAT") or "").strip().lower() == "json":
        _quiet_grpc()


def _quiet_grpc() -> None:
    os.environ["GRPC_VERBOSITY"] = "NONE"
    os.environ["GRPC_TRACE"] = ""


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stderr`` as it is when a record is written, not as it was when the handler
    was made (a process that swaps stderr, as a test runner does, never has lines written to a closed one)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(level: str, fmt: str) -> None:
    """Log at ``level`` to stderr in ``fmt`` (text or json), this process and the workers it starts."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # No line shows the process's or the thread's name: not looking them up makes each record cheaper.
    logging.logMultiprocessing = logging.logProcesses = logging.logThreads = False
    if fmt == "json":
        os.environ["LEDGER_LOG_FORMAT"] = "json"  # the workers (``serve --workers``) log as their parent
        _quiet_grpc()
        logging.captureWarnings(True)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
