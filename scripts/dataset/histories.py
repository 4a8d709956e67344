"""Synthetic operator histories: each number lives through years of simulated tenures (sales by channel
and agent, identity checks, SIM swaps, suspensions, disconnections, port-outs and returns, quarantine,
per-holder clearance, releases, erasures, most of them held by the retention period), the same for the
same seed; a share of the numbers enter by a port-in from another operator's range.
``scripts/generate_dataset.py`` sends them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scripts.dataset import identifiers as synthetic

# channel: (share of sales, agents, verification method, fraud probability per tenure)
CHANNELS = {
    "retail_store": (0.50, 40, "ID_CARD_READER", 0.004),
    "online": (0.30, 3, "ONLINE_PHOTO_LIVENESS", 0.020),
    "dealer": (0.15, 120, "IN_PERSON_MANUAL", 0.045),
    "call_center": (0.05, 20, "IN_PERSON_MANUAL", 0.010),
}
HOLDERS = ("crm", "billing", "voicemail")
MAX_TENURES = 8
# Shares: tenures that end by a port to another operator (number portability's part of churn), ported-out
# numbers that come back when the recipient disconnects them, numbers that enter by a port-in, and the
# policy's retention (erasures requested within it are held; most requests come soon after service ends).
PORT_OUT_SHARE = 0.12
RETURN_SHARE = 0.3
PORTED_IN_SHARE = 0.05
ERASURE_SHARE = 0.35
HELD_ERASURE_SHARE = 0.75
IDENTITY_RETENTION_DAYS = 730
OPERATORS = ("cmcc", "cucc", "ctcc")
PORTED_IN_PREFIX = "+86135"


@dataclass(order=True)
class Command:
    """One command to send: when it happens and what it is."""

    at: datetime
    rpc: str = field(compare=False)
    fields: dict[str, Any] = field(compare=False, default_factory=dict)


def _channel(rng: random.Random) -> tuple[str, str, str, float]:
    roll, acc = rng.random(), 0.0
    for name, (share, agents, method, fraud) in CHANNELS.items():
        acc += share
        if roll <= acc:
            return name, f"{name}-{rng.randrange(agents):03d}", method, fraud
    name = "retail_store"
    return name, f"{name}-000", CHANNELS[name][2], CHANNELS[name][3]


def ported_in(i: int, seed: int) -> bool:
    """Whether number i enters the ledger by a port-in (never number 0: a re-run finds its start there)."""
    return i > 0 and random.Random(f"{seed}:{i}:port-in").random() < PORTED_IN_SHARE


def number_of(i: int, seed: int) -> str:
    """Number i's E.164 form: the synthetic range, or another operator's for a number ported in."""
    return synthetic.msisdn(i, PORTED_IN_PREFIX) if ported_in(i, seed) else synthetic.msisdn(i)


def number_history(i: int, seed: int, start: datetime, end: datetime, quarantine_days: int) -> Iterator[Command]:
    """The commands of number i's simulated life, in time order, ending before ``end``."""
    rng = random.Random(f"{seed}:{i}")
    msisdn = number_of(i, seed)
    t = start + timedelta(days=rng.uniform(0, 60))
    if ported_in(i, seed):
        yield Command(t, "PortInNumber", {"number": msisdn, "donor_operator": rng.choice(OPERATORS)})
        t += timedelta(hours=rng.uniform(1, 24))
    for ordinal in range(MAX_TENURES):
        if t >= end:
            return
        person = i * MAX_TENURES + ordinal
        channel, agent, method, fraud_p = _channel(rng)
        passport = rng.random() < 0.05
        yield Command(
            t,
            "RegisterSubscriber",
            {
                "person": person,
                "full_name": f"Subscriber {person}",
                "id_type": "ID_TYPE_PASSPORT" if passport else "ID_TYPE_RESIDENT_ID_CARD",
                "id_number": f"E{person:09d}" if passport else synthetic.resident_id(person),
            },
        )
        t += timedelta(minutes=rng.uniform(1, 20))
        yield Command(
            t,
            "VerifyIdentity",
            {
                "subscriber": person,
                "method": "PASSPORT_CHECK" if passport else method,
                "channel": channel,
                "agent_id": agent,
                "evidence_ref": f"ev-{person}",
            },
        )
        t += timedelta(minutes=1)
        sim = person * 4
        yield Command(
            t,
            "ActivateSim",
            {
                "number": msisdn,
                "subscriber": person,
                "iccid": synthetic.iccid(sim),
                "imsi": synthetic.imsi(sim),
                "channel": channel,
                "agent_id": agent,
            },
        )
        tenure_end = t + timedelta(days=rng.expovariate(1 / (2.5 * 365)))
        # (A port is not a disconnection: PortOutNumber; the synthetic histories keep their numbers here.)
        reason = rng.choice(["SUBSCRIBER_REQUEST"] * 6 + ["NON_PAYMENT", "OTHER"])
        if rng.random() < fraud_p:  # fraud is caught early in the tenure
            caught = t + timedelta(days=rng.uniform(1, 60))
            if caught >= end:
                return
            yield Command(caught, "SuspendNumber", {"number": msisdn, "reason": "FRAUD", "note": "fraud desk case"})
            tenure_end, reason = caught + timedelta(days=rng.uniform(1, 10)), "FRAUD"
        else:
            cursor = t
            for _ in range(20):
                cursor += timedelta(days=rng.expovariate(1 / 300))
                if cursor >= min(tenure_end, end):
                    break
                kind = rng.random()
                if kind < 0.55:
                    yield Command(cursor, "SuspendNumber", {"number": msisdn, "reason": "NON_PAYMENT", "note": ""})
                    cursor += timedelta(days=rng.uniform(2, 20))
                    if cursor >= end:
                        return
                    yield Command(cursor, "ResumeNumber", {"number": msisdn, "note": "paid"})
                elif kind < 0.80:
                    sim += 1
                    yield _swap(cursor, msisdn, sim, "UPGRADE", channel, agent)
                elif kind < 0.97 and sim < person * 4 + 3:
                    yield Command(cursor, "SuspendNumber", {"number": msisdn, "reason": "LOST_SIM", "note": ""})
                    sim += 1
                    cursor += timedelta(hours=rng.uniform(2, 48))
                    if cursor >= end:
                        return
                    yield _swap(cursor, msisdn, sim, "LOST_OR_STOLEN", channel, agent)
                    yield Command(cursor, "ResumeNumber", {"number": msisdn, "note": "new SIM"})
                else:
                    yield Command(cursor, "SuspendNumber", {"number": msisdn, "reason": "SPAM", "note": "complaints"})
                    cursor += timedelta(days=rng.uniform(1, 7))
                    if cursor >= end:
                        return
                    yield Command(cursor, "ResumeNumber", {"number": msisdn, "note": "warned"})
            tenure_end = max(tenure_end, cursor)
        if tenure_end >= end:
            return
        port = reason != "FRAUD" and rng.random() < PORT_OUT_SHARE
        if port:
            fields = {"number": msisdn, "recipient_operator": rng.choice(OPERATORS), "tenure": ordinal}
            yield Command(tenure_end, "PortOutNumber", fields)
        else:
            yield Command(tenure_end, "DisconnectNumber", {"number": msisdn, "reason": reason, "tenure": ordinal})
        last = tenure_end
        confirmed = 0
        for holder in HOLDERS:
            if rng.random() < 0.97:
                at = tenure_end + timedelta(days=rng.uniform(0.5, 40))
                if at < end:
                    yield Command(
                        at,
                        "ConfirmDataCleared",
                        {"number": msisdn, "tenure": ordinal, "holder": holder, "evidence_ref": f"{holder}-{person}"},
                    )
                    confirmed += 1
                    last = max(last, at)
        quarantine_until = tenure_end + timedelta(days=quarantine_days)
        if rng.random() < ERASURE_SHARE:
            if rng.random() < HELD_ERASURE_SHARE:  # requested within the retention period: held
                erase_at = tenure_end + timedelta(days=rng.uniform(7, IDENTITY_RETENTION_DAYS - 30))
            else:
                erase_at = tenure_end + timedelta(days=rng.uniform(IDENTITY_RETENTION_DAYS + 1, 1100))
            if erase_at < end:
                yield Command(erase_at, "EraseSubscriberData", {"subscriber": person, "legal_basis": "PIPL art. 47"})
        if port:
            if rng.random() >= RETURN_SHARE:
                return  # served elsewhere from now on
            disconnected = tenure_end + timedelta(days=rng.expovariate(1 / (2 * 365)))
            returned = disconnected + timedelta(days=rng.uniform(1, 30))
            if returned >= end:
                return
            yield Command(returned, "ReturnNumber", {"number": msisdn, "disconnected_at": disconnected})
            last = max(last, returned)
            quarantine_until = disconnected + timedelta(days=quarantine_days)
        if confirmed == len(HOLDERS):
            release_at = max(quarantine_until, last) + timedelta(days=rng.uniform(0, 20))
            override = ""
        elif rng.random() < 0.3:
            release_at, override = quarantine_until + timedelta(days=rng.uniform(0, 10)), "aging backlog"
        else:
            return  # stays quarantined: clearance never completed
        if release_at >= end:
            return
        yield Command(release_at, "ReleaseNumber", {"number": msisdn, "override_reason": override})
        t = release_at + timedelta(days=rng.uniform(1, 120))


def _swap(at: datetime, msisdn: str, sim: int, reason: str, channel: str, agent: str) -> Command:
    fields = {
        "number": msisdn,
        "new_iccid": synthetic.iccid(sim),
        "new_imsi": synthetic.imsi(sim),
        "reason": reason,
        "channel": channel,
        "agent_id": agent,
    }
    return Command(at, "SwapSim", fields)
