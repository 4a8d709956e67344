"""Shell blocks of the manual that are not client sessions, run as written (a placeholder the reader fills
in is filled in from what the earlier lines printed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc as hgrpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import lifecycle_service_pb2_grpc as lgrpc
from tests.e2e.test_auth_tls import _certificates
from tests.e2e.test_cli_reflection import free_port
from tests.markdown import blocks

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """The reader's shell with `.venv` activated: `python` is the project's, no LEDGER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _bash(script: str, cwd: Path) -> str:
    result = subprocess.run(["bash", "-c", script], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{script}\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.timeout(120)
def test_the_tokens_block_issues_a_token_the_server_accepts_over_tls(tmp_path: Path) -> None:
    (block,) = [
        b.body
        for b in blocks("docs/operations.md")
        if b.heading == "## Security: tokens, roles, TLS" and b.lang == "sh"
    ]
    lines = block.splitlines()
    heredoc_start = next(i for i, line in enumerate(lines) if line.startswith("cat > auth.toml"))
    heredoc_end = lines.index("TOML", heredoc_start + 1)
    issue, heredoc, serve = lines[:heredoc_start], lines[heredoc_start : heredoc_end + 1], lines[heredoc_end + 1 :]

    printed = [_bash(line, tmp_path) for line in issue]
    token = re.search(r"^# (\S+)$", printed[0], re.M)
    digest = re.search(r'^sha256 = "([0-9a-f]{64})"$', printed[0], re.M)
    assert token and digest and '[[tokens]]\nactor = "crm-prod"' in printed[0] and 'roles = ["operator"]' in printed[0]
    assert 'actor = "audit-team"' in printed[1] and 'roles = ["compliance"]' in printed[1]
    _bash("\n".join(heredoc).replace("<printed digest>", digest.group(1)), tmp_path)

    certificates = _certificates(tmp_path)  # server.crt and server.key, signed by ca.crt
    port = free_port()
    command = " ".join(line.rstrip("\\").strip() for line in serve)
    command = command.replace(" [--tls-client-ca clients-ca.crt]", "").replace("0.0.0.0:50051", f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=tmp_path, env=_env(), stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while "ready" not in (line := proc.stderr.readline()):
            assert line or proc.poll() is None, f"the server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the server did not become ready"
        credentials = grpc.ssl_channel_credentials(root_certificates=certificates["ca.crt"].read_bytes())
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
            lifecycle, history = lgrpc.LifecycleServiceStub(channel), hgrpc.HistoryServiceStub(channel)
            request = lpb.ProvisionNumbersRequest(request_id="p-1", numbers=["+8613800138000"])
            bearer = (("authorization", f"Bearer {token.group(1)}"),)
            assert lifecycle.ProvisionNumbers(request, metadata=bearer, timeout=10).provisioned_count == 1
            with pytest.raises(grpc.RpcError) as unauthenticated:
                lifecycle.ProvisionNumbers(request, timeout=10)
            assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as denied:
                history.GetNumberState(hpb.GetNumberStateRequest(number="+8613800138000"), metadata=bearer, timeout=10)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
