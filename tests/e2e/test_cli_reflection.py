"""``python -m ledger serve`` as a real process, driven by a client built only from server reflection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.conftest import RESIDENT_ID, imsi_for, new_iccid

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReflectionClient:
    """Calls any RPC by name, with request and response types discovered through reflection."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))

    def call(self, service: str, rpc: str, **fields: object) -> dict:
        desc = self.pool.FindServiceByName(service).FindMethodByName(rpc)
        request_cls = message_factory.GetMessageClass(desc.input_type)
        response_cls = message_factory.GetMessageClass(desc.output_type)
        request = json_format.ParseDict(fields, request_cls())
        path = f"/{service}/{rpc}"
        if desc.server_streaming:
            stream = self.channel.unary_stream(
                path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString
            )
            return {"items": [json_format.MessageToDict(r) for r in stream(request, timeout=10)]}
        unary = self.channel.unary_unary(
            path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString
        )
        return json_format.MessageToDict(unary(request, timeout=10))


class Server:
    def __init__(self, workdir: Path, port: int, policy: Path | None = None) -> None:
        args = [sys.executable, "-m", "ledger", "serve", "--listen", f"127.0.0.1:{port}"]
        if policy:
            args += ["--policy", str(policy)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("LEDGER_MASTER_KEY", None)
        self.proc = subprocess.Popen(args, cwd=workdir, env=env, stderr=subprocess.PIPE, text=True)
        self.ready_line = self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + 30
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "ready" in line:
                return line
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
        raise AssertionError("server did not become ready")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_serve_reflection_lifecycle_sigterm_and_restart(workdir: Path) -> None:
    policy = workdir / "policy.toml"
    policy.write_text('quarantine_days = 0\nrequired_holders = ["crm", "billing"]\n')
    port = free_port()
    server = Server(workdir, port, policy)
    try:
        _first_run(server, port, workdir)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(30)


def _first_run(server: Server, port: int, workdir: Path) -> None:
    assert f"127.0.0.1:{port}" in server.ready_line
    # Default store and generated master key live in the working directory.
    assert (workdir / "ledger.db").exists() and (workdir / "ledger.master.key").exists()
    assert (workdir / "ledger.keys.db").exists()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="ledger.v1.LifecycleService")
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    c = ReflectionClient(channel)
    lc, hs = "ledger.v1.LifecycleService", "ledger.v1.HistoryService"
    msisdn = "+8613900139000"
    c.call(lc, "ProvisionNumbers", requestId="p1", numbers=[msisdn])
    sid = c.call(
        lc,
        "RegisterSubscriber",
        requestId="r1",
        fullName="Reflect Tester",
        idType="ID_TYPE_RESIDENT_ID_CARD",
        idNumber=RESIDENT_ID,
    )["subscriberId"]
    c.call(
        lc,
        "VerifyIdentity",
        requestId="v1",
        subscriberId=sid,
        method="VERIFICATION_METHOD_ID_CARD_READER",
        channel="retail",
        agentId="a1",
        evidenceRef="scan",
    )
    iccid = new_iccid()
    tenure = c.call(
        lc,
        "ActivateSim",
        requestId="a1",
        number=msisdn,
        subscriberId=sid,
        iccid=iccid,
        imsi=imsi_for(iccid),
        channel="retail",
        agentId="a1",
    )["tenureId"]
    c.call(lc, "SuspendNumber", requestId="s1", number=msisdn, reason="SUSPENSION_REASON_SPAM")
    c.call(lc, "ResumeNumber", requestId="s2", number=msisdn)
    new_sim = new_iccid()
    c.call(
        lc,
        "SwapSim",
        requestId="w1",
        number=msisdn,
        newIccid=new_sim,
        newImsi=imsi_for(new_sim),
        reason="SIM_SWAP_REASON_DAMAGED",
        channel="retail",
        agentId="a1",
    )
    c.call(lc, "DisconnectNumber", requestId="d1", number=msisdn, reason="DISCONNECT_REASON_NON_PAYMENT")
    with pytest.raises(grpc.RpcError) as e:
        c.call(lc, "ReleaseNumber", requestId="x1", number=msisdn)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "crm" in e.value.details()
    for holder in ("crm", "billing"):
        c.call(
            lc,
            "ConfirmDataCleared",
            requestId=f"c-{holder}",
            number=msisdn,
            tenureId=tenure,
            holder=holder,
            evidenceRef="t",
        )
    c.call(lc, "ReleaseNumber", requestId="x2", number=msisdn)
    history = c.call(hs, "GetNumberHistory", number=msisdn)["items"]
    assert len(history) >= 10
    assert server.stop() == 0

    # Restart on the same files: nothing lost, the recycled number can go to a new subscriber.
    server = Server(workdir, port)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        c = ReflectionClient(channel)
        assert c.call(hs, "GetNumberHistory", number=msisdn)["items"] == history
        sid2 = c.call(
            lc,
            "RegisterSubscriber",
            requestId="r2",
            fullName="Second Holder",
            idType="ID_TYPE_PASSPORT",
            idNumber="E7654321",
        )["subscriberId"]
        c.call(
            lc,
            "VerifyIdentity",
            requestId="v2",
            subscriberId=sid2,
            method="VERIFICATION_METHOD_PASSPORT_CHECK",
            channel="online",
            agentId="kyc",
            evidenceRef="x",
        )
        iccid = new_iccid()
        c.call(
            lc,
            "ActivateSim",
            requestId="a2",
            number=msisdn,
            subscriberId=sid2,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="online",
            agentId="kyc",
        )
        state = c.call(hs, "GetNumberState", number=msisdn)["numberState"]
        assert state["subscriberId"] == sid2 and state["state"] == "NUMBER_STATUS_ACTIVE"
        assert state["tenureCount"] == 2
    finally:
        assert server.stop() == 0


def test_bad_policy_file_is_refused_at_start(workdir: Path) -> None:
    policy = workdir / "policy.toml"
    policy.write_text("quarantine_dayz = 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "ledger", "serve", "--policy", str(policy), "--listen", f"127.0.0.1:{free_port()}"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown policy keys: quarantine_dayz" in result.stderr
