"""Policy per country calling code, checked at start against the legal minimum quarantine; and the
channels that need an agent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import (
    ActivateSim,
    DisconnectNumber,
    ProvisionNumbers,
    RegisterSubscriber,
    SwapSim,
    VerifyIdentity,
)
from ledger.application.pipeline import execute
from ledger.domain import errors
from ledger.jurisdictions import LEGAL_MINIMUM_QUARANTINE, Jurisdiction
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import ConfigError, Policy
from tests.conftest import FakeClock, imsi_for, new_iccid, onboard_app, resident_id

POLICY = """
quarantine_days = 60

[jurisdictions."+1"]
quarantine_days = 45

[jurisdictions."+91"]
quarantine_days = 90
max_numbers_per_identity = 9

[jurisdictions."+86"]
quarantine_days = 90
max_numbers_per_identity = 1
"""


def test_policy_file_sets_values_per_calling_code(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(POLICY)
    p = Policy.from_toml(f)
    assert p.quarantine_days_for("+12015550123") == 45
    assert p.quarantine_days_for("+919812345678") == 90 and p.max_numbers_for("+919812345678") == 9
    assert p.max_numbers_for("+8613800138000") == 1
    assert p.quarantine_days_for("+447700900123") == 60 and p.max_numbers_for("+447700900123") == 5
    f.write_text("[policy]\nquarantine_days = 60\n" + POLICY.replace("quarantine_days = 60\n", "", 1))
    assert Policy.from_toml(f).quarantine_days_for("+12015550123") == 45


def test_the_longest_calling_code_wins() -> None:
    p = Policy(jurisdictions=(Jurisdiction("+1", quarantine_days=45), Jurisdiction("+1868", quarantine_days=120)))
    assert p.quarantine_days_for("+18685550123") == 120 and p.quarantine_days_for("+12015550123") == 45


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[jurisdictions."+1"]\nquarantine_days = 30\n', "under the legal minimum of 45 days (US FCC 47 CFR 52.15"),
        (
            'quarantine_days = 30\n[jurisdictions."+1"]\nmax_numbers_per_identity = 3\n',
            "quarantine_days 30, which jurisdictions.'+1' takes, is under the legal minimum of 45 days",
        ),
        ('[jurisdictions."1"]\nquarantine_days = 60\n', "is not a country calling code"),
        ('[jurisdictions."+1"]\ncolour = 1\n', "unknown keys in jurisdictions.'+1': colour"),
        ('[jurisdictions."+1"]\nquarantine_days = "45"\n', "must be an integer"),
        ('[jurisdictions."+1"]\nmax_numbers_per_identity = 0\n', "between 1 and 1000"),
        ("jurisdictions = 5\n", "must be a table"),
        ('agent_channels = "retail"\n', "agent_channels must be a list of strings"),
    ],
)
def test_bad_jurisdictions_are_refused_at_start_naming_the_rule(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Policy.from_toml(f)
    assert message in str(refused.value)


def test_only_minimums_a_regulation_states_are_enforced() -> None:
    # India's 90 days was quoted from memory: TRAI's 90 days are of non-usage before a prepaid connection may be
    # deactivated (Telecom Consumers Protection (Sixth Amendment) Regulations 2013), not an aging period
    # before a disconnected number is reassigned; no minimum is claimed where no rule's text says one.
    assert set(LEGAL_MINIMUM_QUARANTINE) == {"+1"}
    p = Policy.from_mapping({"quarantine_days": 30, "jurisdictions": {"+91": {"quarantine_days": 60}}})
    assert p.quarantine_days_for("+919812345678") == 60
    # The policy's own quarantine applies to a jurisdiction that sets none, so it is checked against it too.
    assert Policy.from_mapping({"quarantine_days": 45, "jurisdictions": {"+1": {}}}).quarantine_days_for("+1201") == 45


@pytest.fixture
def ledger():
    clock = FakeClock()
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    policy = Policy(
        jurisdictions=(Jurisdiction("+1", quarantine_days=45), Jurisdiction("+86", max_numbers_per_identity=1))
    )
    app = LedgerApplication(env=memory_env(), vault=vault, policy=policy, clock=clock, group_commit=False)
    yield app
    app.close()


def test_disconnection_quarantine_and_cap_follow_the_numbers_jurisdiction(ledger) -> None:
    onboard_app(ledger, "+12015550123", 1)
    result = execute(
        ledger, DisconnectNumber(number="+12015550123", reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t"
    )
    assert result.data["quarantine_until"] == (ledger.clock.now() + timedelta(days=45)).isoformat()
    sid = onboard_app(ledger, "+8613800138000", 2)
    execute(ledger, ProvisionNumbers(numbers=["+8613800138001"]), request_id="p-x", actor="t")
    iccid = new_iccid()
    with pytest.raises(errors.IdentityNumberCap):  # +86 allows one number per identity here
        execute(
            ledger,
            ActivateSim(
                number="+8613800138001",
                subscriber_id=sid,
                iccid=iccid,
                imsi=imsi_for(iccid),
                channel="retail",
                agent_id="a",
            ),
            request_id="a-x",
            actor="t",
        )


def _register(app: LedgerApplication, seq: int) -> UUID:
    result = execute(
        app,
        RegisterSubscriber(full_name="X", id_type="RESIDENT_ID_CARD", id_number=resident_id(seq), date_of_birth=""),
        request_id=f"r{seq}",
        actor="t",
    )
    return UUID(result.data["subscriber_id"])


def test_self_service_channels_need_no_agent_and_agent_channels_do(ledger) -> None:
    sid = _register(ledger, 5)
    common = {"subscriber_id": sid, "method": "ONLINE_PHOTO_LIVENESS", "evidence_ref": "selfie"}
    with pytest.raises(errors.InvalidArgument) as refused:
        execute(ledger, VerifyIdentity(channel="retail", agent_id="", **common), request_id="v0", actor="t")
    assert refused.value.violations == [("agent_id", "is required on channel 'retail' (policy agent_channels)")]
    execute(ledger, VerifyIdentity(channel="app", agent_id="", **common), request_id="v1", actor="t")
    execute(ledger, ProvisionNumbers(numbers=["+447700900123"]), request_id="p", actor="t")
    iccid = new_iccid()
    execute(
        ledger,
        ActivateSim(
            number="+447700900123", subscriber_id=sid, iccid=iccid, imsi=imsi_for(iccid), channel="app", agent_id=""
        ),
        request_id="a",
        actor="t",
    )
    assert ledger.get_number("+447700900123").tenures[0].agent_id == ""
    other = new_iccid()
    with pytest.raises(errors.InvalidArgument):
        execute(
            ledger,
            SwapSim(
                number="+447700900123",
                new_iccid=other,
                new_imsi=imsi_for(other),
                reason="LOST_OR_STOLEN",
                channel="shop",
                agent_id="",
            ),
            request_id="s",
            actor="t",
        )
