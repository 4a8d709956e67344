"""The synthetic histories hold what an operator's history holds, in realistic shares: port-outs among the
tenures' ends, returns of ported-out numbers, numbers ported in, SIM swaps, and erasures requested inside
the retention period (held) as well as after it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from scripts.dataset.histories import IDENTITY_RETENTION_DAYS, number_history, number_of, ported_in

START = datetime(2021, 1, 4, tzinfo=UTC)
END = START + timedelta(days=5 * 365)


def test_histories_port_return_swap_and_hold_erasures_in_realistic_shares() -> None:
    kinds: Counter[str] = Counter()
    held = after = 0
    for i in range(2000):
        commands = list(number_history(i, 11, START, END, 90))
        kinds.update(c.rpc for c in commands)
        ends = {}
        for c in commands:
            if c.rpc in ("DisconnectNumber", "PortOutNumber"):
                ends[c.fields.get("tenure")] = c.at
        for c in commands:
            if c.rpc == "EraseSubscriberData":
                ended = max(at for at in ends.values() if at <= c.at)
                if c.at - ended < timedelta(days=IDENTITY_RETENTION_DAYS):
                    held += 1
                else:
                    after += 1
    tenure_ends = kinds["DisconnectNumber"] + kinds["PortOutNumber"]
    assert 0.06 <= kinds["PortOutNumber"] / tenure_ends <= 0.20  # number portability's share of churn
    assert 0.15 <= kinds["ReturnNumber"] / kinds["PortOutNumber"] <= 0.5
    assert 0.02 <= kinds["PortInNumber"] / 2000 <= 0.08
    assert kinds["SwapSim"] > 0.2 * kinds["ActivateSim"]
    assert held > 2 * after > 0  # most erasures are requested soon after service ends: held by the retention


def test_ported_in_numbers_come_from_another_range_and_number_zero_is_never_one() -> None:
    assert not ported_in(0, 11) and number_of(0, 11) == "+8613900000000"
    ins = [i for i in range(2000) if ported_in(i, 11)]
    assert ins and all(number_of(i, 11).startswith("+86135") for i in ins)
    first = next(iter(number_history(ins[0], 11, START, END, 90)))
    assert first.rpc == "PortInNumber" and first.fields["number"] == number_of(ins[0], 11)


def test_the_same_seed_gives_the_same_commands() -> None:
    end = START + timedelta(days=1000)
    a = [(c.at, c.rpc, c.fields) for c in number_history(3, 5, START, end, 90)]
    b = [(c.at, c.rpc, c.fields) for c in number_history(3, 5, START, end, 90)]
    assert a == b and a
    assert a != [(c.at, c.rpc, c.fields) for c in number_history(3, 6, START, end, 90)]  # another seed, another
