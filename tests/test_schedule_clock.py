"""Schedules fire by the store's clock: hosts sharing a PostgreSQL store whose clocks run ahead
or behind, or are set (an NTP step) while `labloom serve` runs, fire each slot once, at the
server's time; `schedule list` says when the next one is by that clock too. On SQLite the store
is one machine's file and its clock is that machine's: a clock set back there never runs a slot
twice, and the scheduler beats on.

A host's clock is faked in its Python processes (``time.time``), as in test_two_hosts; the
machine's own clock, which the PostgreSQL server reads, is the truth the runs write down."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from cli_helpers import wait_for
from test_two_hosts import Host, host_clock

CLOCKED = """
import os, time
from labloom import flow, task

@task
def stamp(out):
    # The machine's clock: the faked time.time of this host's processes does not reach it.
    real = time.clock_gettime(time.CLOCK_REALTIME)
    with open(out, "a") as handle:
        handle.write(f"{os.environ['LABLOOM_SCHEDULED_TIME']} {real} {os.environ['LABLOOM_HOST']}\\n")

@flow
def ticking(out: str):
    stamp(out)
"""

AHEAD = 60.0
STEP = 30.0
# A run starts after its slot, by a tick and a process start (a loaded machine: seconds); one
# fired by a clock a minute off is a minute early or late.
LATE_AT_MOST = 30.0


@pytest.fixture
def hosts(tmp_path: Path, store_backend: str) -> tuple[Host, Host]:
    """Two hosts on one store (test_two_hosts'), with the flow below in their folder."""
    url = os.environ.get("LABLOOM_DATABASE_URL") or f"sqlite:///{tmp_path / 'team.db'}"
    (tmp_path / "clocked.py").write_text(CLOCKED)
    shared = tmp_path / "shared-results"
    return Host("host-a", tmp_path, url, shared), Host("host-b", tmp_path, url, shared)


def ticking(host: Host, root: Path, out: Path) -> str:
    """Adds a schedule whose runs stamp ``out``, every second; what the command said."""
    added = host.cli("schedule", "add", f"{root / 'clocked.py'}:ticking", "--every", "1s",
                     "-p", f"out={out}", "--allow-overlap")
    assert added.returncode == 0, added.stderr
    return added.stdout


def serve(host: Host) -> subprocess.Popen[str]:
    return host.start("-m", "labloom", "serve", "--tick", "0.05")


@contextmanager
def stepped_scheduler(a: Host, root: Path, out: Path) -> Iterator[subprocess.Popen[str]]:
    """A's `labloom serve`, its clock set by signals, once it has run two slots; stopped after."""
    host_clock(a, root, step=STEP)
    ticking(a, root, out)
    server = serve(a)
    try:
        wait_for(lambda: len(stamps(out)) >= 2, 60, "two scheduled runs")
        yield server
    finally:
        stop([server])


def stop(servers: list[subprocess.Popen[str]]) -> None:
    for server in servers:
        server.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def stamps(out: Path) -> list[tuple[float, float, str]]:
    """Each run's slot, the machine's time when it ran, and its host."""
    if not out.exists():
        return []
    return [(float(slot), float(real), host) for slot, real, host in
            (line.split() for line in out.read_text().splitlines())]


def more_runs(out: Path, n: int, what: str) -> None:
    seen = len(stamps(out))
    wait_for(lambda: len(stamps(out)) >= seen + n, 20, what)


def assert_fired_at_the_stores_time(out: Path) -> list[float]:
    runs = stamps(out)
    slots = [slot for slot, _, _ in runs]
    assert len(slots) == len(set(slots)), runs  # no slot twice
    late = [(round(real - slot, 2), host) for slot, real, host in runs]
    assert all(-1.0 < seconds < LATE_AT_MOST for seconds, _ in late), late
    return sorted(slots)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.postgresql_only  # one SQLite file is one machine's: one clock
@pytest.mark.timeout(180)
def test_hosts_ahead_and_behind_fire_each_slot_at_the_servers_time(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    # Slots were due by each host's clock: A, a minute ahead, started every run a minute
    # before its time, its slots counted from a minute late; B, a minute behind, listed the
    # next run as a minute away or a minute past.
    a, b = hosts
    host_clock(a, tmp_path, ahead=AHEAD)
    host_clock(b, tmp_path, ahead=-AHEAD)
    out = tmp_path / "ticks.txt"
    # Between our clock's times around the command (a second's slot, a second of rounding):
    # a minute late before, however slow the command.
    before = time.time()
    added = ticking(a, tmp_path, out)
    first = epoch(added.split("first run ")[1].split()[0])
    assert before - 2 <= first <= time.time() + 2, added
    for action in ("pause", "resume"):  # resumed from the host ahead: from now, not its now
        assert a.cli("schedule", action, "ticking").returncode == 0
    servers = [serve(a), serve(b)]
    try:
        wait_for(lambda: len(stamps(out)) >= 4, 60, "four scheduled runs")
        before = time.time()
        listed = b.cli("schedule", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [upcoming] = [s["next_run"] for s in json.loads(listed.stdout)["schedules"]
                      if s["name"] == "ticking"]
        # The slot after the last one claimed: not after the command, and not before it by
        # more than the lateness the servers are allowed (a loaded machine's); a minute off
        # before.
        assert before - LATE_AT_MOST <= epoch(upcoming) <= time.time() + 2, upcoming
    finally:
        stop(servers)
    assert_fired_at_the_stores_time(out)


@pytest.mark.postgresql_only  # on SQLite the machine's clock is the store's: see below
@pytest.mark.timeout(180)
def test_a_hosts_clock_set_back_and_forward_fires_every_slot_once_at_the_servers_time(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    # Slots were due by the host's clock, and its offset to the server measured once in
    # 10 min: set back 30 s, the scheduler started nothing for 30 s (nor beat); set forward,
    # it would have started runs 30 s before their slots.
    out = tmp_path / "ticks.txt"
    with stepped_scheduler(hosts[0], tmp_path, out) as server:
        server.send_signal(signal.SIGUSR2)
        more_runs(out, 2, "runs after the host's clock was set back")
        server.send_signal(signal.SIGUSR1)
        more_runs(out, 2, "runs after the host's clock was set forward")
    slots = assert_fired_at_the_stores_time(out)
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert max(gaps) < 10, slots  # none skipped for the 30 s steps (a loaded tick: a few)


@pytest.mark.timeout(180)
def test_a_scheduler_whose_clock_is_set_back_beats_on_and_runs_no_slot_twice(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    # Its heartbeat went by its clock: set back 30 s, it beat no heartbeat (nor looked for a
    # gone scheduler's slots) for 30 s. On SQLite the slots it ran count once the machine's
    # clock reaches them again; on PostgreSQL the server's clock never went back.
    from labloom.store.db import get_database

    out = tmp_path / "ticks.txt"
    store = get_database(hosts[0].env["LABLOOM_DATABASE_URL"])
    with stepped_scheduler(hosts[0], tmp_path, out) as server, store.connect() as conn:
        def last_beat() -> float:
            return float(conn.execute("SELECT beat FROM schedulers").fetchone()[0])

        beats = [last_beat()]
        server.send_signal(signal.SIGUSR2)
        # Two beats after: one may have been on its way as the clock was set.
        wait_for(lambda: beats.append(last_beat()) or len(set(beats)) >= 3, 60,
                 "heartbeats after the clock was set back")
    slots = [slot for slot, _, _ in stamps(out)]
    assert len(slots) == len(set(slots)) >= 2
