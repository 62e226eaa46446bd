"""Slot arithmetic is exact: over many random anchors and times, every interval and cron form,
and across DST changes, the slot after a slot is never that slot again."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from labloom.schedule import stored_schedules as sched
from labloom.schedule.times import to_ms
from labloom.store.db import Conn

RNG_SEED = 20261202
START, END = datetime(2025, 1, 1).timestamp(), datetime(2028, 1, 1).timestamp()

INTERVALS = ["0.001s", "0.25s", "1s", "2.5s", "90s", "5m", "1h30m", "1d", "7d"]
CRONS = [
    "* * * * *", "*/5 * * * *", "0 * * * *", "30 2 * * *", "0 2 * * *", "15,45 9-17 * * 1-5",
    "0 0 1 * *", "0 0 29 2 *", "@hourly", "@daily", "@weekly", "@monthly", "*/10 * * * * *",
]
# Refused at `schedule add` since session 40 (seconds last, where Quartz puts them first), but
# schedules stored before still run: their slots stay exact.
STORED_ONLY = {"*/10 * * * * *"}
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


def schedule(**options: object) -> sched.Schedule:
    values: dict[str, object] = dict(
        name="s", target="/x/f.py:f", workdir="/x", cron=None, every=None, timezone=None,
        params={}, notify=None, executor=None, address=None, catchup="once", overlap=False,
        paused=False, anchor=START, not_before=START, created=START,
    )
    values.update(options)
    return sched.Schedule(**values)  # type: ignore[arg-type]


def anchors(rng: random.Random, n: int) -> Iterator[float]:
    """Random times, a third of them with a sub-millisecond fraction under 0.5 ms."""
    for i in range(n):
        whole = rng.randrange(int(START), int(END))
        fraction = [rng.random(), rng.random() * 0.0005, rng.randrange(1000) / 1000][i % 3]
        yield whole + fraction


def check_exact(s: sched.Schedule, when: float) -> None:
    nxt = s.next_after(when)
    assert nxt > when
    assert s.next_after(nxt) > nxt  # the bug: next after a slot was that slot
    assert s.latest_at(nxt) == nxt
    assert s.next_after(s.next_after(nxt) - 0.0005) == s.next_after(nxt)
    latest = s.latest_at(when)
    if latest is not None:
        assert latest <= when + 1e-5 and when < nxt  # 10 µs below a slot counts as on it
        assert s.next_after(latest) == nxt
    if s.every:  # on the grid, in whole milliseconds
        k, rest = divmod(round(nxt * 1000) - to_ms(s.anchor), round(s.every * 1000))
        assert rest == 0 and k >= 1


@pytest.mark.parametrize("every", INTERVALS)
def test_interval_slots_are_exact_for_random_anchors(every: str) -> None:
    rng = random.Random(f"{RNG_SEED}-{every}")
    seconds = sched.parse_duration(every)
    for anchor in anchors(rng, 300):
        s = schedule(every=seconds, anchor=anchor)
        check_exact(s, anchor)  # from the anchor itself
        check_exact(s, anchor + rng.random() * 1000 * seconds)
        slot = s.next_after(anchor + rng.randrange(1, 50) * seconds)
        check_exact(s, slot)  # from a slot, as the scheduler does after each run


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("cron", CRONS)
def test_cron_slots_are_exact_for_random_times(cron: str, zone: str) -> None:
    rng = random.Random(f"{RNG_SEED}-{cron}-{zone}")
    s = schedule(cron=cron if cron in STORED_ONLY else sched.check_cron(cron), timezone=zone)
    for when in anchors(rng, 40):
        check_exact(s, when)
        check_exact(s, s.next_after(when))


BERLIN = ZoneInfo("Europe/Berlin")


def walk(s: sched.Schedule, start: datetime, end: datetime) -> list[str]:
    out, when = [], start.timestamp()
    while (when := s.next_after(when)) < end.timestamp():
        out.append(datetime.fromtimestamp(when, BERLIN).isoformat())
    return out


def test_a_daily_cron_fires_once_a_day_across_both_dst_changes() -> None:
    s = schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    spring = walk(s, datetime(2026, 3, 27, 12, tzinfo=BERLIN), datetime(2026, 3, 31, tzinfo=BERLIN))
    # 29 March 2026 has no 2:30 in Berlin: the slot comes when the clocks jump, at 3:30 CEST.
    assert spring == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00",
                      "2026-03-30T02:30:00+02:00"]
    autumn = walk(s, datetime(2026, 10, 23, 12, tzinfo=BERLIN), datetime(2026, 10, 27, tzinfo=BERLIN))
    # 25 October 2026 has two 2:30s: one slot, the first.
    assert autumn == ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
                      "2026-10-26T02:30:00+01:00"]


def test_hourly_slots_across_dst_are_distinct_and_increasing() -> None:
    s = schedule(cron="0 * * * *", timezone="Europe/Berlin")
    spring = walk(s, datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN),
                  datetime(2026, 3, 29, 5, tzinfo=BERLIN))
    assert spring == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00",
                      "2026-03-29T04:00:00+02:00"]
    autumn = walk(s, datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN),
                  datetime(2026, 10, 25, 4, 30, tzinfo=BERLIN))
    assert autumn == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                      "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]
    # In the repeated hour's second pass, the latest slot is still the one before it.
    second_pass = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1).timestamp()
    assert s.latest_at(second_pass) == datetime(2026, 10, 25, 2, tzinfo=BERLIN).timestamp()


@pytest.fixture
def conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conn]:
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path))
    with sched.store() as connection:
        yield connection


@pytest.mark.parametrize("fraction", [0.0, 0.0001, 0.0004, 0.0005, 0.0006, 0.9996])
def test_ticking_on_time_claims_each_slot_once_and_never_as_catch_up(
    conn: Conn, fraction: float
) -> None:
    anchor = 1_800_000_000 + fraction
    s = schedule(every=2.0, anchor=anchor, not_before=anchor)
    sched.add(conn, s)
    conn.execute("INSERT INTO schedulers (id, host, pid, started, beat) VALUES "
                 "('a', 'elsewhere', 1, 0, 1e12)")
    claimed = []
    for tick in range(1, 210):  # ticks of 0.1 s, as `labloom serve --tick 0.1`
        now = anchor + tick * 0.1
        claim = sched.claim_due(conn, s, "a", now)
        if claim is not None:
            assert not claim.catchup, (claim, now)
            sched.finish_slot(conn, "s", claim.slot, "completed")
            claimed.append(claim.slot)
            assert sched.next_run(conn, s, now) > claim.slot  # `schedule list`: next is not last
    assert len(claimed) == len(set(claimed)) == 10
    assert [row["status"] for row in sched.slots(conn, "s")] == ["completed"] * 10
