"""Every batch job that calls a server takes the connection options: a token for a server started with
``--auth`` (on the command line or in LEDGER_TOKEN), and TLS or mutual TLS."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.__main__ import main as ledger_main
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import generate_dataset, monitor_heads, recycling_check, release_due_numbers
from tests.conftest import imsi_for, new_iccid, number, running_server
from tests.e2e.test_auth_tls import _certificates, bearer, tokens  # noqa: F401 (a fixture)


def _due_for_release(stubs, metadata, msisdn: str) -> None:
    """A number whose tenure ended and whose holders all confirmed: due at once with no quarantine."""
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[msisdn]), metadata=metadata)
    sid = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="r", full_name="Ann Lee", id_type=1, id_number="11010519491231002X"),
        metadata=metadata,
    ).subscriber_id
    stubs.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="v", subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        ),
        metadata=metadata,
    )
    iccid = new_iccid()
    tenure = stubs.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id="a",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a1",
        ),
        metadata=metadata,
    ).tenure_id
    stubs.lifecycle.DisconnectNumber(
        lpb.DisconnectNumberRequest(request_id="d", number=msisdn, reason=1), metadata=metadata
    )
    for holder in ("crm", "billing", "voicemail"):
        stubs.lifecycle.ConfirmDataCleared(
            lpb.ConfirmDataClearedRequest(
                request_id=f"c-{holder}", number=msisdn, tenure_id=tenure, holder=holder, evidence_ref="x"
            ),
            metadata=metadata,
        )


@pytest.mark.timeout(300)
def test_every_job_takes_a_token(settings, clock, tokens, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: F811
    path, issued = tokens
    clock.t = datetime.now(UTC)  # generate_dataset simulates up to the wall clock, as in production
    secured = dataclasses.replace(
        settings, auth_file=path, policy=dataclasses.replace(settings.policy, quarantine_days=0)
    )
    db = f"sqlite:///{settings.store.sqlite_path}"
    public_key = tmp_path / "head.pub"
    checks = tmp_path / "in.csv"
    checks.write_text(f"number,since_date\n{number(1)},2026-01-05\n")
    for stubs, app in running_server(secured, clock):
        assert ledger_main(["head", "--db", db, "--public-key"]) == 0
        public_key.write_text(capsys.readouterr().out)
        _due_for_release(stubs, bearer(issued["operator"]), number(1))
        assert stubs.projector is not None and stubs.projector.wait_for(app.reader.max_position(), 10)
        target = ["--target", stubs.target]
        jobs = {
            "recycling_check": (
                recycling_check.main,
                [str(checks), "-o", str(tmp_path / "out.csv"), "--no-progress", *target],
                "checker",
            ),
            "monitor_heads": (
                monitor_heads.main,
                ["--heads", str(tmp_path / "heads.jsonl"), "--public-key", str(public_key), "--fresh", *target],
                "compliance",
            ),
            "release_due_numbers": (release_due_numbers.main, ["--db", db, *target], "operator"),
            "generate_dataset": (
                generate_dataset.main,
                ["--numbers", "2", "--years", "1", "--seed", "5", "--no-progress", *target],
                "admin",
            ),
        }
        # Without a token every job is refused, in one line that says so.
        for name, (main, args, _) in jobs.items():
            if name == "release_due_numbers":
                continue  # it goes on past one refusal; below, with the token, it releases the number
            capsys.readouterr()
            assert main(args) == 1, name
            err = capsys.readouterr().err
            assert "UNAUTHENTICATED" in err and "Traceback" not in err, (name, err)
        # With its role's token (on the command line, or in LEDGER_TOKEN) each does its work.
        for name, (main, args, role) in jobs.items():
            capsys.readouterr()
            if name == "monitor_heads":
                monkeypatch.setenv("LEDGER_TOKEN", issued[role])
                assert main(args) == 0, (name, capsys.readouterr())
                monkeypatch.delenv("LEDGER_TOKEN")
            else:
                assert main([*args, "--token", issued[role]]) == 0, (name, capsys.readouterr())
            out = capsys.readouterr().out
            if name == "release_due_numbers":
                assert f"released {number(1)}" in out
            if name == "monitor_heads":
                assert out.startswith("ok: head at size")
        assert f"{number(1)},2026-01-05,CHANGED,true" in (tmp_path / "out.csv").read_text()


@pytest.mark.timeout(120)
def test_jobs_over_tls_and_mutual_tls(settings, clock, tokens, tmp_path: Path, capsys) -> None:  # noqa: F811
    path, issued = tokens
    c = _certificates(tmp_path)
    mutual = dataclasses.replace(
        settings, auth_file=path, tls_cert=c["server.crt"], tls_key=c["server.key"], tls_client_ca=c["ca.crt"]
    )
    checks = tmp_path / "in.csv"
    checks.write_text(f"number,since_date\n{number(1)},2026-01-05\n")
    import grpc

    client = grpc.ssl_channel_credentials(
        root_certificates=c["ca.crt"].read_bytes(),
        private_key=c["client.key"].read_bytes(),
        certificate_chain=c["client.crt"].read_bytes(),
    )
    for stubs, _ in running_server(mutual, clock, client):
        out = tmp_path / "out.csv"
        base = [str(checks), "-o", str(out), "--no-progress", "--target", stubs.target, "--token", issued["checker"]]
        tls = ["--tls-ca", str(c["ca.crt"])]
        mtls = [*tls, "--tls-cert", str(c["client.crt"]), "--tls-key", str(c["client.key"])]
        assert recycling_check.main([*base, *mtls]) == 0, capsys.readouterr().err
        assert "NO_DATA" in out.read_text()
        # Plaintext to a TLS server, or TLS without the client certificate it asks for: not reachable.
        for options in ([], tls):
            capsys.readouterr()
            assert recycling_check.main([*base, *options]) == 1
            assert "no ledger server answers" in capsys.readouterr().err
        # A certificate without its key is a usage error, before any call.
        assert recycling_check.main([*base, *tls, "--tls-cert", str(c["client.crt"])]) == 2
        assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
