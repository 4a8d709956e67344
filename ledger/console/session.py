"""A people command's session: its channel to the server, its options, and how it prints (text or JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ledger.console.refusals import reachable
from ledger.console.text import Times
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, recycling_service_pb2_grpc

# A call that has not answered in this long is given up (exit 3: the server did not answer).
CALL_SECONDS = 60.0


@dataclass
class Session:
    """One command's channel, options and output."""

    args: argparse.Namespace
    channel: grpc.Channel
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    _times: Times | None = None

    @property
    def history(self) -> history_service_pb2_grpc.HistoryServiceStub:
        """HistoryService on the channel."""
        return history_service_pb2_grpc.HistoryServiceStub(self.channel)

    @property
    def recycling(self) -> recycling_service_pb2_grpc.RecyclingServiceStub:
        """RecyclingService on the channel."""
        return recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)

    def times(self, known: str | None = None) -> Times:
        """How to show times: ``--tz``, else the zone the server's policy names (when this token may ask
        for the status), else UTC."""
        if self._times is None:
            zone = self.args.tz or known or self._server_zone()
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):  # a zone this machine's time zone data lacks
                print(f"ledger: this machine does not know the time zone {zone!r}; times in UTC", file=sys.stderr)
                zone = "UTC"
            self._times = Times(zone)
        return self._times

    def _server_zone(self) -> str:
        try:
            return str(self.history.GetStatus(hpb.GetStatusRequest(), timeout=CALL_SECONDS).time_zone or "UTC")
        except grpc.RpcError as e:
            if not reachable(e):
                raise
            return "UTC"  # a token without the compliance role: times in UTC only

    def print(self, *lines: str) -> None:
        """Write lines to the output."""
        for line in lines:
            print(line, file=self.out)

    def json(self, message: Message | Sequence[Message]) -> None:
        """The response as ``buf curl`` prints it (field names in lowerCamelCase, 64-bit integers as
        strings, enums by name); a stream as one JSON array of its messages."""
        if isinstance(message, Message):
            self.print(json_format.MessageToJson(message, indent=2, ensure_ascii=False))
        else:
            self.print(json.dumps([json_format.MessageToDict(m) for m in message], indent=2, ensure_ascii=False))
