"""The answers every edge gives, on a SQLite file and on PostgreSQL: recycling checks (the CAMARA scenarios,
held now, clearance, porting), clearance rows and SIM swap answers, composed by ``projections.answers``
from the views the project's projector built, awaited on its position. The edges' translation of these
answers (status codes, the wire's fields) is tests/e2e/test_recycling_grpc.py and test_porting_grpc.py."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from uuid import UUID

import pytest

from ledger.application import LedgerApplication
from ledger.application.commands import (
    ActivateSim,
    Command,
    ConfirmDataCleared,
    DisconnectNumber,
    PortInNumber,
    PortOutNumber,
    ProvisionNumbers,
    RegisterSubscriber,
    ReleaseNumber,
    ReturnNumber,
    SuspendNumber,
    SwapSim,
    VerifyIdentity,
)
from ledger.application.pipeline import execute
from ledger.bootstrap import open_projector, row_seal
from ledger.config import Settings
from ledger.domain import errors
from ledger.server.progress import Progress
from projections.answers import Answers, check_numbers
from projections.db import ViewsDatabase
from projections.people import PeopleQueries
from projections.queries import ReadModels
from projections.recycling import Decision
from projections.views import us
from tests.conftest import FakeClock, imsi_for, new_iccid, number, resident_id

STORES = ("sqlite", "postgres")
HOLDERS = ["crm", "billing", "voicemail"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Ledger:
    """The application on one store, the projector that feeds its views, and the answers read from them."""

    def __init__(self, settings: Settings, app: LedgerApplication, clock: FakeClock) -> None:
        self.settings, self.app, self.clock = settings, app, clock
        self.projector = open_projector(settings, app)
        self.read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(app), app.reader)
        progress = Progress(app.reader.max_position, lambda: self.projector.position)
        self.answers = Answers(self.read_models, settings.policy, progress, clock.now)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.read_models.close()
        self.projector.close()

    def do(self, command: Command, when: str | None = None) -> dict:
        """Execute a command (at ``when``, else now); returns its result's data."""
        occurred_at = at(when) if when else None
        result = execute(self.app, command, request_id=f"r{next(self._ids)}", actor="t", occurred_at=occurred_at)
        return result.data

    def holder(self, msisdn: str, seq: int, when: str | None = None, channel: str = "retail") -> tuple[UUID, UUID]:
        """A verified subscriber activated on ``msisdn``; returns (subscriber_id, tenure_id)."""
        agent = "a" if channel == "retail" else ""
        registered = RegisterSubscriber(
            full_name=f"Holder {seq}", id_type="RESIDENT_ID_CARD", id_number=resident_id(seq), date_of_birth=""
        )
        sid = UUID(self.do(registered, when)["subscriber_id"])
        method = "ID_CARD_READER" if agent else "ONLINE_PHOTO_LIVENESS"
        verified = VerifyIdentity(subscriber_id=sid, method=method, channel=channel, agent_id=agent, evidence_ref="e")
        self.do(verified, when)
        return sid, self.activate(msisdn, sid, when, channel)

    def activate(self, msisdn: str, sid: UUID, when: str | None = None, channel: str = "retail") -> UUID:
        iccid = new_iccid()
        agent = "a" if channel == "retail" else ""
        activated = ActivateSim(
            number=msisdn, subscriber_id=sid, iccid=iccid, imsi=imsi_for(iccid), channel=channel, agent_id=agent
        )
        return UUID(self.do(activated, when)["tenure_id"])

    def settle(self) -> int:
        """The projector has applied every event (what a min_position wait gives a client)."""
        self.projector.catch_up()
        head = self.app.reader.max_position()
        assert self.projector.position == head
        return head

    def checks(self, queries: list[tuple[str, str]]) -> list[Decision]:
        self.settle()
        numbers, dates = [n for n, _ in queries], [date.fromisoformat(d) for _, d in queries]
        return check_numbers(self.read_models, numbers, dates, self.settings.policy.zone).decisions

    def check(self, msisdn: str, since: str) -> Decision:
        head = self.settle()
        _, position, decision = self.answers.check_one(msisdn, date.fromisoformat(since))
        assert position == head
        return decision


@pytest.fixture
def ledger(settings: Settings, app: LedgerApplication, clock: FakeClock):
    answered = Ledger(settings, app, clock)
    yield answered
    answered.close()


@pytest.fixture
def recycled(ledger: Ledger) -> tuple[Ledger, str]:
    """A number held by one subscriber, cleared, released and held by a second one."""
    ledger.clock.t = at("2027-01-10T00:00:00")
    msisdn = number(1)
    ledger.do(ProvisionNumbers(numbers=[msisdn]), "2026-01-01T08:00:00")
    _, first = ledger.holder(msisdn, 1, "2026-01-03T10:00:00")
    ledger.do(DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), "2026-03-01T12:00:00")
    for holder in HOLDERS:
        cleared = ConfirmDataCleared(number=msisdn, tenure_id=first, holder=holder, evidence_ref="t")
        ledger.do(cleared, "2026-03-05T00:00:00")
    ledger.do(ReleaseNumber(number=msisdn, override_reason=""), "2026-06-01T00:00:00")
    ledger.holder(msisdn, 2, "2026-07-01T09:30:00")
    return ledger, msisdn


def test_camara_scenarios(recycled) -> None:
    """Moved from tests/e2e/test_recycling_grpc.py (test_camara_scenarios)."""
    ledger, msisdn = recycled
    # The current holder's contract date: not changed, and any later date too.
    assert ledger.check(msisdn, "2026-07-01").status == "NOT_CHANGED"
    assert ledger.check(msisdn, "2026-11-30").status == "NOT_CHANGED"
    # A day in the gap between two holders: changed; the previous tenure ended before that day.
    gap = ledger.check(msisdn, "2026-06-15")
    assert (gap.status, gap.clearance) == ("CHANGED", "NOT_APPLICABLE")
    # During the first tenure: changed, and that tenure's clearance is reported.
    first = ledger.check(msisdn, "2026-02-01")
    assert (first.status, first.clearance) == ("CHANGED", "CLEARED")
    assert first.last_disconnected_us == us(at("2026-03-01T12:00:00"))
    # The day the tenure ended counts as changed.
    assert ledger.check(msisdn, "2026-03-01").status == "CHANGED"
    # Before the ledger's records of the number: a disconnection on record after the date says it changed.
    assert ledger.check(msisdn, "2025-12-31").status == "CHANGED"
    unknown = ledger.check(number(999), "2026-01-01")
    assert (unknown.status, unknown.no_data_reason) == ("NO_DATA", "UNKNOWN_NUMBER")


def test_held_now_follows_the_tenure_whatever_the_date(recycled) -> None:
    """Moved from tests/e2e/test_recycling_grpc.py (test_held_now_follows_the_tenure_whatever_the_date)."""
    ledger, msisdn = recycled
    # Held by the second holder: recycled for a date before them, not recycled since their contract.
    for since, status in (("2026-02-01", "CHANGED"), ("2026-07-01", "NOT_CHANGED"), ("2025-12-31", "CHANGED")):
        found = ledger.check(msisdn, since)
        assert (found.status, found.held_now) == (status, True)
    ledger.do(SuspendNumber(number=msisdn, reason="SPAM", note=""), "2026-12-01T00:00:00")
    assert ledger.check(msisdn, "2026-07-01").held_now  # a suspended tenure is still open
    ledger.do(DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), "2026-12-02T00:00:00")
    cancelled = ledger.check(msisdn, "2026-07-01")
    assert (cancelled.status, cancelled.held_now) == ("CHANGED", False)  # changed, and nobody holds it now
    assert not ledger.check(number(999), "2026-01-01").held_now  # unknown: nobody holds it here
    both = ledger.checks([(msisdn, "2026-07-01"), (number(999), "2026-07-01")])
    assert [(d.status, d.held_now) for d in both] == [("CHANGED", False), ("NO_DATA", False)]
    held = number(3)
    ledger.do(ProvisionNumbers(numbers=[held]), "2026-01-01T08:00:00")
    ledger.holder(held, 3, "2026-01-03T10:00:00")
    assert ledger.check(held, "2026-01-03").held_now
    (before,) = ledger.checks([(held, "2026-01-01")])
    assert before.held_now


def test_clearance_pending_then_cleared_then_violation(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_recycling_grpc.py (test_clearance_pending_then_cleared_then_violation)."""
    msisdn = number(2)
    ledger.do(ProvisionNumbers(numbers=[msisdn]))
    _, tenure = ledger.holder(msisdn, 2)
    since = "2026-01-05"  # the day of provisioning, activation and disconnection
    ledger.do(DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"))
    found = ledger.check(msisdn, since)
    assert (found.status, found.clearance, found.outstanding_holders) == ("CHANGED", "PENDING", tuple(HOLDERS))
    for holder in ("crm", "billing"):
        ledger.do(ConfirmDataCleared(number=msisdn, tenure_id=tenure, holder=holder, evidence_ref="t"))
    found = ledger.check(msisdn, since)
    assert (found.clearance, found.outstanding_holders) == ("PENDING", ("voicemail",))
    # Released early by override while voicemail is outstanding: a violation.
    ledger.do(ReleaseNumber(number=msisdn, override_reason="court order"))
    assert ledger.check(msisdn, since).clearance == "VIOLATION"
    (t,) = ledger.read_models.numbers([msisdn])[msisdn].tenures  # what GetClearance answers
    assert UUID(t.tenure_id) == tenure and t.clearance == "VIOLATION"
    assert [c[0] for c in t.confirmations] == ["crm", "billing"]
    assert t.outstanding_holders == ["voicemail"] and t.override_reason == "court order"
    assert t.released_us and t.quarantine_until_us and t.disconnected_us
    assert t.quarantine_until_us > t.disconnected_us
    # The last holder confirming does not undo the violation.
    ledger.do(ConfirmDataCleared(number=msisdn, tenure_id=tenure, holder="voicemail", evidence_ref="t"))
    found = ledger.check(msisdn, since)
    assert (found.clearance, found.outstanding_holders) == ("VIOLATION", ())
    assert ledger.read_models.numbers([number(77)]) == {}  # GetClearance: NOT_FOUND


def ported(ledger: Ledger, msisdn: str) -> None:
    """Held since 2023-01-10, ported out on 2024-05-01 09:00."""
    ledger.do(ProvisionNumbers(numbers=[msisdn]), "2023-01-01T08:00:00")
    ledger.holder(msisdn, 1, "2023-01-10T09:00:00")
    ledger.do(PortOutNumber(number=msisdn, recipient_operator="other-mno"), "2024-05-01T09:00:00")


def test_row1_a_ported_out_number_answers_no_data_with_the_port_time(ledger: Ledger) -> None:
    ported(ledger, number(1))
    found = ledger.check(number(1), "2023-06-01")
    assert (found.status, found.no_data_reason, found.held_now) == ("NO_DATA", "PORTED_OUT", False)
    assert found.ported_out_us == us(at("2024-05-01T09:00:00"))
    assert found.last_disconnected_us is None  # porting is no change of holder


def test_row2_a_disconnection_while_served_here_stays_changed_after_the_port(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 2)."""
    msisdn = number(2)
    ledger.do(ProvisionNumbers(numbers=[msisdn]), "2023-01-01T08:00:00")
    ledger.holder(msisdn, 1, "2023-01-10T09:00:00")
    ledger.do(DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), "2023-03-01T09:00:00")
    ledger.do(ReleaseNumber(number=msisdn, override_reason="test"), "2023-05-01T00:00:00")
    ledger.holder(msisdn, 2, "2023-06-01T09:00:00")
    ledger.do(PortOutNumber(number=msisdn, recipient_operator="other-mno"), "2024-05-01T09:00:00")
    found = ledger.check(msisdn, "2023-02-01")
    assert found.status == "CHANGED" and found.last_disconnected_us == us(at("2023-03-01T09:00:00"))
    assert found.ported_out_us is not None and found.no_data_reason == ""
    assert ledger.check(msisdn, "2023-07-01").status == "NO_DATA"


def test_row3_a_returned_number_changed_at_the_recipients_disconnection(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 3); the release after it is tests/unit/test_porting.py."""
    msisdn = number(3)
    ported(ledger, msisdn)
    back = ReturnNumber(number=msisdn, disconnected_at=at("2024-09-01T00:00:00"))
    assert ledger.do(back, "2024-09-10T00:00:00")["quarantine_until"] == at("2024-11-30T00:00:00").isoformat()
    found = ledger.check(msisdn, "2023-06-01")
    assert found.status == "CHANGED" and found.last_disconnected_us == us(at("2024-09-01T00:00:00"))
    assert found.clearance == "PENDING" and found.ported_out_us is None
    assert ledger.check(msisdn, "2024-10-01").status == "CHANGED"  # nobody holds it now
    (tenure,) = ledger.read_models.numbers([msisdn])[msisdn].tenures
    assert tenure.quarantine_until_us == us(at("2024-11-30T00:00:00"))


def test_row4_a_ported_in_number_has_records_from_the_port_in(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 4)."""
    msisdn = number(4)
    ledger.do(PortInNumber(number=msisdn, donor_operator="donor-mno"), "2024-03-01T09:00:00")
    ledger.holder(msisdn, 4, "2024-03-01T10:00:00")
    assert ledger.check(msisdn, "2024-03-01").status == "NOT_CHANGED"
    before = ledger.check(msisdn, "2024-02-01")
    assert (before.status, before.no_data_reason) == ("NO_DATA", "RECORDS_BEGIN_LATER")
    assert ledger.check(number(999), "2024-02-01").no_data_reason == "UNKNOWN_NUMBER"


def test_row5_a_number_ported_back_in_starts_its_records_again(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 5)."""
    msisdn = number(5)
    ported(ledger, msisdn)
    ledger.do(PortInNumber(number=msisdn, donor_operator="other-mno"), "2024-07-01T09:00:00")
    ledger.holder(msisdn, 5, "2024-07-01T10:00:00")
    assert ledger.check(msisdn, "2024-07-01").status == "NOT_CHANGED"
    assert ledger.check(msisdn, "2023-06-01").no_data_reason == "RECORDS_BEGIN_LATER"


def test_row6_a_disconnection_on_record_after_the_date_is_changed_before_the_records(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 6; issue 18)."""
    msisdn = number(6)
    ledger.do(ProvisionNumbers(numbers=[msisdn]), "2023-03-01T08:00:00")
    ledger.holder(msisdn, 6, "2023-03-01T09:00:00")
    ledger.do(DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), "2024-05-10T09:00:00")
    ledger.do(ReleaseNumber(number=msisdn, override_reason="test"), "2024-07-31T00:00:00")
    ledger.holder(msisdn, 7, "2024-08-01T09:00:00")
    found = ledger.check(msisdn, "2023-01-01")
    assert found.status == "CHANGED" and found.last_disconnected_us == us(at("2024-05-10T09:00:00"))


def test_row9_a_port_out_opens_the_former_holders_clearance(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 9)."""
    msisdn = number(9)
    ported(ledger, msisdn)
    ledger.settle()
    (tenure,) = ledger.read_models.numbers([msisdn])[msisdn].tenures
    assert tenure.outstanding_holders == HOLDERS and tenure.quarantine_until_us is None
    cleared = ConfirmDataCleared(number=msisdn, tenure_id=UUID(tenure.tenure_id), holder="crm", evidence_ref="x")
    assert ledger.do(cleared)["clearance"] == "PENDING"


def test_sim_swap_answers_count_the_first_activation_and_later_swaps(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_sim_swap_answers_count_the_first_activation_...)."""
    msisdn, clock = number(20), ledger.clock
    provisioned = clock.now()
    ledger.do(ProvisionNumbers(numbers=[msisdn, number(21)]))
    head = ledger.settle()
    position, found = ledger.answers.sim_swap(msisdn, 240, head)
    assert found.latest_sim_change_us is None and position == head
    sid, _ = ledger.holder(number(21), 21)  # another number: its activation is not this one's
    clock.advance(minutes=1)
    ledger.activate(msisdn, sid, channel="app")
    head = ledger.settle()
    position, found = ledger.answers.sim_swap(msisdn, 1, head)
    assert found.latest_sim_change_us == us(clock.now())  # the first SIM counts (SIM Swap v2)
    assert found.monitored_since_us == us(provisioned) and position == head and found.swapped
    clock.advance(minutes=2)
    new = new_iccid()
    swap = SwapSim(
        number=msisdn, new_iccid=new, new_imsi=imsi_for(new), reason="LOST_OR_STOLEN", channel="app", agent_id=""
    )
    ledger.do(swap)
    ledger.settle()
    _, found = ledger.answers.sim_swap(msisdn)  # maxAge defaults to 240 hours
    assert found.latest_sim_change_us == us(clock.now()) and found.swapped
    assert ledger.answers.sim_swap(msisdn, 2400)[1].swapped


def test_sim_swap_of_an_old_change_is_not_within_the_period(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_sim_swap_of_an_old_change_is_not_within_the_period)."""
    msisdn = number(22)
    ledger.do(ProvisionNumbers(numbers=[msisdn]), "2024-01-01T08:00:00")
    ledger.holder(msisdn, 22, "2024-01-02T09:00:00")
    head = ledger.settle()
    position, found = ledger.answers.sim_swap(msisdn, 2400, head)
    assert not found.swapped and position == head
    assert found.latest_sim_change_us == us(at("2024-01-02T09:00:00"))


def test_sim_swap_of_a_number_unknown_or_ported_out_is_refused_and_a_returned_one_is_ours(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_sim_swap_refusals)."""
    with pytest.raises(errors.NumberNotFound):
        ledger.answers.sim_swap(number(30))
    msisdn = number(31)
    ported(ledger, msisdn)
    ledger.settle()
    for hours in (240, 24):
        with pytest.raises(errors.NumberPortedOut) as refused:
            ledger.answers.sim_swap(msisdn, hours)
        assert refused.value.reason == "NUMBER_PORTED_OUT"
    ledger.do(ReturnNumber(number=msisdn, disconnected_at=at("2024-06-01T00:00:00")))
    ledger.settle()
    _, found = ledger.answers.sim_swap(msisdn)
    assert found.latest_sim_change_us == us(at("2023-01-10T09:00:00"))  # ours again


def test_batch_sim_swap_answers_each_number_in_order(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_batch_check_sim_swap_answers_each_number_in_order)."""
    fresh, old, gone = number(60), number(61), number(62)
    ledger.do(ProvisionNumbers(numbers=[old, gone]), "2024-01-01T08:00:00")
    ledger.holder(old, 61, "2024-01-02T09:00:00")
    ledger.holder(gone, 62, "2024-01-02T09:00:00")
    ledger.do(PortOutNumber(number=gone, recipient_operator="other-mno"), "2024-03-01T09:00:00")
    ledger.do(ProvisionNumbers(numbers=[fresh]))
    ledger.holder(fresh, 60)  # activated now (the ledger's clock)
    head = ledger.settle()
    numbers = [fresh, old, gone, number(64)]
    answers = ledger.answers.sim_swaps(numbers, [1, 240, 24, 24])
    assert answers.as_of_position == head and answers.numbers == numbers
    assert [(a.answer, a.swapped) for a in answers.answers] == [
        ("ANSWERED", True),
        ("ANSWERED", False),
        ("PORTED_OUT", False),
        ("UNKNOWN_NUMBER", False),
    ]
    assert answers.answers[1].latest_sim_change_us == us(at("2024-01-02T09:00:00"))


def test_self_service_has_no_agent_to_rank_and_counts_under_its_channel(ledger: Ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_self_service_needs_no_agent_and_the_store_does)."""
    ledger.do(ProvisionNumbers(numbers=[number(40)]))
    ledger.holder(number(40), 40, channel="app")
    ledger.settle()
    people = PeopleQueries(ledger.read_models)
    assert [a for a in people.agents() if a["channel"] == "app"] == []  # no agent to rank
    (app_channel,) = [c for c in people.channel_rates() if c["channel"] == "app"]
    assert (app_channel["verifications"], app_channel["activations"], app_channel["in_service"]) == (1, 1, 1)
