"""When a schedule is due, catch-up, overlap and two schedulers: real SQLite and PostgreSQL,
explicit clocks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from labloom.schedule import liveness
from labloom.schedule import stored_schedules as sched
from labloom.store.db import Conn, get_database
from labloom.store.home import host_name


@pytest.fixture
def conn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conn]:
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path))
    with sched.store() as connection:
        yield connection


T0 = 1_000_000.0


def every(name: str = "s", seconds: float = 10.0, **options: object) -> sched.Schedule:
    values: dict[str, object] = dict(
        name=name, target="/x/f.py:f", workdir="/x", cron=None, every=seconds, timezone=None,
        params={}, notify=None, executor=None, address=None, catchup="once", overlap=False,
        paused=False, anchor=T0, not_before=T0, created=T0,
    )
    values.update(options)
    return sched.Schedule(**values)  # type: ignore[arg-type]


def alive(conn: Conn, scheduler: str, now: float) -> None:
    conn.execute(
        "INSERT INTO schedulers (id, host, pid, started, beat) VALUES (?, 'h', 1, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET beat = excluded.beat",
        (scheduler, now, now),
    )


def test_durations() -> None:
    assert sched.parse_duration("30s") == 30
    assert sched.parse_duration("5m") == 300
    assert sched.parse_duration("1h30m") == 5400
    assert sched.parse_duration("1d") == 86400
    assert sched.parse_duration("2.5") == 2.5
    for bad in ("", "5x", "m5", "0s", "1h 30q", "-3"):
        with pytest.raises(sched.ScheduleError, match="duration"):
            sched.parse_duration(bad)
    assert sched.format_duration(5400) == "1h30m"


def test_cron_and_timezone_checks() -> None:
    assert sched.check_cron("0 2 * * *") == "0 2 * * *"
    with pytest.raises(sched.ScheduleError, match="bad cron expression"):
        sched.check_cron("0 2 * *")
    with pytest.raises(sched.ScheduleError, match="unknown timezone"):
        sched.check_timezone("Mars/Olympus")


def test_cron_slots_follow_the_timezone_across_dst() -> None:
    s = every(cron="0 2 * * *", every=None, timezone="Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    first = s.next_after(datetime(2024, 3, 29, 12, 0, tzinfo=paris).timestamp())
    second = s.next_after(first)  # 31 March 2024 has no 2 a.m. in Paris
    third = s.next_after(second)
    assert datetime.fromtimestamp(first, paris).hour == 2
    assert datetime.fromtimestamp(third, paris).hour == 2
    assert third - first == 2 * 86400 - 3600
    assert s.latest_at(third + 5) == third


def test_on_time_slot_is_claimed_once(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    alive(conn, "a", T0)
    assert sched.claim_due(conn, s, "a", T0 + 5) is None  # not due yet
    claim = sched.claim_due(conn, s, "a", T0 + 10.2)
    assert claim is not None and claim.slot == T0 + 10 and not claim.catchup
    sched.finish_slot(conn, "s", claim.slot, "completed")
    assert sched.claim_due(conn, s, "b", T0 + 10.3) is None  # another scheduler: same slot
    assert sched.next_run(conn, s) == T0 + 20


def test_two_schedulers_never_share_a_slot(tmp_path: Path, conn: Conn) -> None:
    s = every(overlap=True)
    sched.add(conn, s)
    other = get_database().connect(named_rows=True)
    alive(conn, "a", T0)
    claims = []
    for k in range(1, 30):
        now = T0 + k * 10 + 0.1
        for who, c in (("a", conn), ("b", other)):
            claims.append(sched.claim_due(c, s, who, now) if k % 2 else None)
            claims.append(sched.claim_due(c, s, who, now))
    other.close()
    slots = [c.slot for c in claims if c is not None]
    assert len(slots) == len(set(slots)) == 29


def test_missed_slots_make_one_catch_up_run(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    claim = sched.claim_due(conn, s, "a", T0 + 55)  # slots 10..50 passed while down
    assert claim is not None and claim.catchup and claim.slot == T0 + 50
    sched.finish_slot(conn, "s", claim.slot, "completed")
    assert sched.claim_due(conn, s, "a", T0 + 56) is None
    assert [row["status"] for row in sched.slots(conn, "s")] == ["completed"]


def test_catchup_skip(conn: Conn) -> None:
    s = every(catchup="skip")
    sched.add(conn, s)
    assert sched.claim_due(conn, s, "a", T0 + 57) is None
    rows = sched.slots(conn, "s")
    assert [(r["slot_time"], r["status"]) for r in rows] == [(T0 + 50, "skipped")]
    assert "missed" in rows[0]["note"]
    claim = sched.claim_due(conn, s, "a", T0 + 60.1)  # the next one is on time
    assert claim is not None and claim.slot == T0 + 60


def test_no_overlap_skips_the_slot(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    alive(conn, "a", T0 + 10)
    first = sched.claim_due(conn, s, "a", T0 + 10.1)
    assert first is not None
    alive(conn, "a", T0 + 20)
    assert sched.claim_due(conn, s, "a", T0 + 20.1) is None
    skipped = sched.slots(conn, "s")[-1]
    assert skipped["status"] == "skipped" and "still running" in skipped["note"]
    sched.finish_slot(conn, "s", first.slot, "completed")
    assert sched.claim_due(conn, s, "a", T0 + 30.1) is not None


def test_allow_overlap(conn: Conn) -> None:
    s = every(overlap=True)
    sched.add(conn, s)
    alive(conn, "a", T0 + 20)
    assert sched.claim_due(conn, s, "a", T0 + 10.1) is not None
    assert sched.claim_due(conn, s, "a", T0 + 20.1) is not None


def test_a_dead_schedulers_run_does_not_block_forever(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    alive(conn, "gone", T0 + 10)
    assert sched.claim_due(conn, s, "gone", T0 + 10.1) is not None
    later = T0 + 10 + liveness.STALE_AFTER + 10
    claim = sched.claim_due(conn, s, "a", later)
    assert claim is not None
    assert sched.slots(conn, "s")[0]["status"] == "lost"


def test_paused_and_resumed(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    sched.set_paused(conn, "s", True)
    assert sched.claim_due(conn, s, "a", T0 + 10.1) is None
    sched.set_paused(conn, "s", False)
    resumed = sched.get(conn, "s")
    assert resumed.not_before > T0  # what passed while paused is not caught up


def test_names_are_unique(conn: Conn) -> None:
    sched.add(conn, every())
    with pytest.raises(sched.ScheduleError, match="--name"):
        sched.add(conn, every())
    with pytest.raises(sched.ScheduleError, match="no schedule named 'x'; the schedules are s"):
        sched.remove(conn, "x")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def scheduler_here(conn: Conn, scheduler: str, pid: int, now: float) -> None:
    """A scheduler row of this host with a fresh heartbeat (as a SIGKILLed one leaves it)."""
    conn.execute(
        "INSERT INTO schedulers (id, host, pid, started, beat) VALUES (?, ?, ?, ?, ?)",
        (scheduler, host_name(), pid, now, now),
    )


def flow_run(conn: Conn, run_id: str, state: str, pid: int, now: float) -> None:
    conn.execute(
        "INSERT INTO flow_runs (id, flow_name, state, host, pid, heartbeat) "
        "VALUES (?, 'f', ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
        "heartbeat = excluded.heartbeat", (run_id, state, host_name(), pid, now),
    )


def test_a_dead_scheduler_on_this_host_is_seen_at_once(conn: Conn) -> None:
    s = every()
    sched.add(conn, s)
    killed = dead_pid()
    scheduler_here(conn, "killed", killed, T0 + 10)
    claim = sched.claim_due(conn, s, "killed", T0 + 10.1)
    assert claim is not None
    flow_run(conn, "r1", "Completed", killed, T0 + 12)
    sched.finish_slot(conn, "s", claim.slot, "running", run_id="r1")
    # Its heartbeat is fresh, but its pid is dead: no 30 s of "still running".
    assert liveness.health(conn, T0 + 20.1)["running"] is False
    assert sched.claim_due(conn, s, "new", T0 + 20.1) is not None
    first = sched.slots(conn, "s")[0]
    assert (first["status"], first["run_id"]) == ("completed", "r1")  # never "lost"
    assert "scheduler stopped" in first["note"]


def test_a_killed_schedulers_run_still_going_blocks_overlap_until_it_ends(
    conn: Conn,
) -> None:
    s = every()
    sched.add(conn, s)
    scheduler_here(conn, "killed", dead_pid(), T0 + 10)
    claim = sched.claim_due(conn, s, "killed", T0 + 10.1)
    assert claim is not None
    flow_run(conn, "r1", "Running", os.getpid(), T0 + 20)  # the run's process lives on
    sched.finish_slot(conn, "s", claim.slot, "running", run_id="r1")
    assert sched.claim_due(conn, s, "new", T0 + 20.1) is None
    assert sched.slots(conn, "s")[-1]["note"] == "the previous run was still running"
    flow_run(conn, "r1", "Failed", os.getpid(), T0 + 25)
    assert sched.claim_due(conn, s, "new", T0 + 30.1) is not None
    assert [r["status"] for r in sched.slots(conn, "s")] == ["failed", "skipped", "running"]
