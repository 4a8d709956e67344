"""Generate a realistic synthetic operator history through the public gRPC API.

Each number lives through years of simulated tenures: sales by channel and agent, identity checks,
SIM swaps, suspensions for non-payment, spam, lost SIMs and fraud, disconnections, port-outs (some
numbers come back when the recipient disconnects them), quarantine, per-holder data clearance (some
late, some missing), releases (a few by override) and erasure requests (most within the retention
period, so held); a share of the numbers enter by a port-in from another operator's range. The same
seed always gives the same history; request ids are derived from it and from the simulated time, so a
re-run after an interruption continues without recording anything twice. Without ``--end`` the
history ends when the first run started: a re-run finds that moment in the ledger (the time the
dataset's numbers were provisioned), never in the wall clock.

    python -m scripts.generate_dataset --target 127.0.0.1:50051 --numbers 100000 --years 3 --seed 7

By default the history is streamed through ImportCommands (subscriber and tenure ids are derived, so no
command waits for another's answer); ``--unary`` sends every command as its own call instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from ledger.cli import EXIT_INTERRUPTED, RunFailed, one_line_errors
from ledger.connection import Connection, add_connection_arguments
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts.dataset import identifiers as synthetic
from scripts.dataset.histories import Command, number_history, number_of, ported_in

# Recorded as the actor of every command (the releases by override name it in the compliance report).
ACTOR = (("x-ledger-actor", "generate_dataset"),)


class Sender:
    """Sends one number's commands in order, resolving subscriber and tenure ids as they are returned."""

    def __init__(self, stub: lifecycle_service_pb2_grpc.LifecycleServiceStub, seed: int) -> None:
        self.stub = stub
        self.seed = seed

    def run(self, i: int, commands: list[Command]) -> Counter[str]:
        """Send the commands; returns counts of sent and refused commands by RPC."""
        counts: Counter[str] = Counter()
        subscribers: dict[int, str] = {}
        tenures: dict[int, str] = {}
        for k, cmd in enumerate(sorted(commands)):
            f = dict(cmd.fields)
            registering = f.pop("person", None)
            if "subscriber" in f:
                person = f.pop("subscriber")
                if person not in subscribers:
                    counts[f"{cmd.rpc} skipped"] += 1
                    continue
                f["subscriber_id"] = subscribers[person]
            if "tenure" in f:
                ordinal = f.pop("tenure")
                if cmd.rpc == "ConfirmDataCleared":
                    if ordinal not in tenures:
                        counts[f"{cmd.rpc} skipped"] += 1
                        continue
                    f["tenure_id"] = tenures[ordinal]
            request = _request(cmd.rpc, f"gen{self.seed}-{i}-{k}", cmd.at, f)
            try:
                response = _call(getattr(self.stub, cmd.rpc), request)
            except grpc.RpcError as e:
                counts[f"{cmd.rpc} refused ({e.code().name})"] += 1
                continue
            counts[cmd.rpc] += 1
            if registering is not None:
                subscribers[registering] = response.subscriber_id
            elif cmd.rpc in ("DisconnectNumber", "PortOutNumber"):
                tenures[cmd.fields["tenure"]] = response.tenure_id
        return counts


def _snake(rpc: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


def import_commands(i: int, seed: int, commands: list[Command]) -> Iterator[lpb.ImportCommand]:
    """Number i's commands as ImportCommands, with subscriber and tenure ids derived as the ledger does."""
    msisdn = number_of(i, seed)
    registered: dict[int, str] = {}
    for k, cmd in enumerate(sorted(commands)):
        f = dict(cmd.fields)
        request_id = f"gen{seed}-{i}-{k}"
        person = f.pop("person", None)
        if person is not None:
            registered[person] = str(Subscriber.id_for_request(request_id))
        if "subscriber" in f:
            f["subscriber_id"] = registered[f.pop("subscriber")]
        if "tenure" in f:
            ordinal = f.pop("tenure")
            if cmd.rpc == "ConfirmDataCleared":
                f["tenure_id"] = str(Number.tenure_id_for(msisdn, ordinal + 1))
        yield lpb.ImportCommand(**{_snake(cmd.rpc): _request(cmd.rpc, request_id, cmd.at, f)})


def run_import(
    stub: lifecycle_service_pb2_grpc.LifecycleServiceStub,
    numbers: int,
    seed: int,
    start: datetime,
    end: datetime,
    quarantine_days: int,
    batch: int,
    bar: Any,
) -> Counter[str]:
    """Stream every number's history through ImportCommands; returns counts by command and outcome."""
    counts: Counter[str] = Counter()
    sent: list[int] = []  # numbers completed by each request, for progress

    def requests() -> Iterator[lpb.ImportCommandsRequest]:
        pending: list[lpb.ImportCommand] = []
        done = 0
        for i in range(numbers):
            pending.extend(import_commands(i, seed, list(number_history(i, seed, start, end, quarantine_days))))
            done += 1
            if len(pending) >= batch:
                sent.append(done)
                yield lpb.ImportCommandsRequest(commands=pending)
                pending, done = [], 0
        if pending:
            sent.append(done)
            yield lpb.ImportCommandsRequest(commands=pending)

    for k, response in enumerate(stub.ImportCommands(requests(), metadata=ACTOR)):
        for result in response.results:
            name = result.WhichOneof("response") or ""
            if result.HasField("error"):
                counts[f"{result.error.reason} (refused)"] += 1
            else:
                counts["".join(w.title() for w in name.split("_")) + (" (replayed)" if result.replayed else "")] += 1
        bar.update(sent[k])
    return counts


# Enum-valued request fields: (rpc or "*", field) -> (enum descriptor, value prefix).
ENUMS: dict[tuple[str, str], tuple[Any, str]] = {
    ("*", "id_type"): (ledger_pb2.IdType, ""),
    ("*", "method"): (ledger_pb2.VerificationMethod, "VERIFICATION_METHOD_"),
    ("SuspendNumber", "reason"): (ledger_pb2.SuspensionReason, "SUSPENSION_REASON_"),
    ("DisconnectNumber", "reason"): (ledger_pb2.DisconnectReason, "DISCONNECT_REASON_"),
    ("SwapSim", "reason"): (ledger_pb2.SimSwapReason, "SIM_SWAP_REASON_"),
}


def _request(rpc: str, request_id: str, at: datetime, f: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for key, value in f.items():
        enum = ENUMS.get((rpc, key)) or ENUMS.get(("*", key))
        if isinstance(value, datetime):  # ReturnNumber's disconnected_at
            moment = Timestamp()
            moment.FromDatetime(value)
            value = moment
        values[key] = enum[0].Value(enum[1] + value) if enum else value
    ts = Timestamp()
    ts.FromDatetime(at)
    return getattr(lpb, f"{rpc}Request")(request_id=request_id, occurred_at=ts, **values)


RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED)


def _call(method: Any, request: Any) -> Any:
    for attempt in range(8):
        try:
            return method(request, timeout=30, metadata=ACTOR)
        except grpc.RpcError as e:
            # A request past its deadline may still have been recorded: its retry, under the same request
            # ids, returns the first results and records nothing new.
            if e.code() not in RETRIED or attempt == 7:
                raise
            time.sleep(0.1 * 2**attempt)
    raise RuntimeError("unreachable")


def recorded_start(stub: history_service_pb2_grpc.HistoryServiceStub, seed: int) -> datetime | None:
    """When an earlier run of this seed provisioned its numbers (its simulated start), if one did."""
    try:
        for item in stub.GetNumberHistory(hpb.GetNumberHistoryRequest(number=synthetic.msisdn(0)), timeout=30):
            event = item.event
            if event.type == "NumberProvisioned" and event.request_id == f"gen{seed}-provision-0":
                return event.occurred_at.ToDatetime(tzinfo=UTC)
            return None
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
    return None


@one_line_errors("generate_dataset")
def main(argv: list[str] | None = None) -> int:
    """Generate the dataset; prints a summary of what was recorded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("--numbers", type=int, default=1000, help="how many numbers (default 1000)")
    parser.add_argument("--years", type=float, default=3.0, help="simulated years of history (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="numbers simulated in parallel (default 8)")
    parser.add_argument("--quarantine-days", type=int, default=90, help="the server's policy (default 90)")
    parser.add_argument("--end", help="simulated end, ISO date (default: when this seed's first run started)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--unary", action="store_true", help="one call per command instead of ImportCommands")
    parser.add_argument("--batch", type=int, default=2000, help="commands per ImportCommands request (default 2000)")
    args = parser.parse_args(argv)
    channel = Connection.from_args(args).channel([("grpc.max_send_message_length", 64 << 20)])
    stub = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
    span = timedelta(days=365 * args.years)
    if args.end:
        end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    else:
        earlier = recorded_start(history_service_pb2_grpc.HistoryServiceStub(channel), args.seed)
        end = earlier + span if earlier else datetime.now(UTC).replace(microsecond=0)
    start = end - span
    began = time.perf_counter()
    # Numbers ported in from another operator's range enter by PortInNumber, not by provisioning.
    numbers = [synthetic.msisdn(i) for i in range(args.numbers) if not ported_in(i, args.seed)]
    ts = Timestamp()
    ts.FromDatetime(start)
    sender = Sender(stub, args.seed)
    totals: Counter[str] = Counter({"ProvisionNumbers (numbers)": len(numbers)})
    pool = ThreadPoolExecutor(args.concurrency)
    bar = tqdm(total=args.numbers, unit="numbers", disable=args.no_progress, file=sys.stderr)
    try:
        for chunk in range(0, len(numbers), 10_000):
            try:
                _call(
                    stub.ProvisionNumbers,
                    lpb.ProvisionNumbersRequest(
                        request_id=f"gen{args.seed}-provision-{chunk}",
                        numbers=numbers[chunk : chunk + 10_000],
                        occurred_at=ts,
                    ),
                )
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                raise RunFailed(
                    f"this ledger holds seed {args.seed}'s dataset with other --numbers, --years or --end; "
                    "give the first run's values, another --seed, or a fresh ledger"
                ) from None
        if not args.unary:
            totals.update(run_import(stub, args.numbers, args.seed, start, end, args.quarantine_days, args.batch, bar))
        futures = [
            pool.submit(
                lambda i: sender.run(i, list(number_history(i, args.seed, start, end, args.quarantine_days))), i
            )
            for i in range(args.numbers if args.unary else 0)
        ]
        for future in as_completed(futures):
            totals.update(future.result())
            bar.update(1)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        channel.close()
        print(
            f"generate_dataset: interrupted after {bar.n} of {args.numbers} numbers; the same command again "
            "goes on (what was recorded is replayed, not recorded twice)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    pool.shutdown()
    elapsed = time.perf_counter() - began
    commands = sum(v for k, v in totals.items() if " " not in k or k.endswith("(replayed)"))
    print(
        f"generated {args.numbers} numbers over {args.years} years (seed {args.seed}) in {elapsed:.0f}s; "
        f"{commands} commands accepted ({commands / elapsed:.0f}/s)"
    )
    for key in sorted(totals):
        print(f"  {key:<40} {totals[key]:>10}")
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
