"""The JSON log formatter: one object per line, extra fields kept, a traceback in one field."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from ledger.logs import JsonFormatter, log_format
from ledger.policy import ConfigError


def record(**kwargs: object) -> logging.LogRecord:
    return logging.getLogger("ledger.test").makeRecord(
        "ledger.test", logging.INFO, "f.py", 1, "x %d", (1,), None, extra=kwargs
    )


def test_a_record_is_one_json_line_with_its_extra_fields() -> None:
    line = JsonFormatter().format(record(rpc="ledger.v1.S/M", code="OK", duration_ms=1.5, actor=None))
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("INFO", "ledger.test", "x 1")
    assert datetime.fromisoformat(parsed["time"]).utcoffset() is not None
    assert (parsed["rpc"], parsed["code"], parsed["duration_ms"]) == ("ledger.v1.S/M", "OK", 1.5)
    assert "actor" not in parsed  # unknown fields are left out, not null


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.getLogger("ledger.test").makeRecord(
            "ledger.test", logging.ERROR, "f.py", 1, "unexpected error", (), sys.exc_info()
        )
    line = JsonFormatter().format(rec)
    assert line.count("\n") == 0
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and "Traceback" in parsed["exc_info"] and "ValueError: boom" in parsed["exc_info"]


def test_the_format_comes_from_the_option_then_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LEDGER_LOG_FORMAT", "json")
    assert log_format(None) == "json"
    assert log_format("text") == "text"
    monkeypatch.setenv("LEDGER_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError):
        log_format(None)
