"""A schedule a running `labloom serve` refuses (its alerts go by mail, and serve's
LABLOOM_SMTP_PORT is bad) is listed as refused, by that serve, with the fix: `labloom schedule
list`, its --json and GET schedules. Before, only serve's log said so, once; the list showed
the schedule as if it would run, and it never ran. A serve that stops, or is killed, refuses
nothing any more; one that finds the schedule gone drops its refusal."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import (
    first_slot_in,
    labloom,
    serving,
    slot_rows,
    start_labloom,
    stop,
    store_of,
    wait_for,
    write,
)
from labloom.store.home import host_name
from test_schedule_serve import FLOW
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SAID = ("LABLOOM_SMTP_PORT must be a port number from 1 to 65535 (the SMTP relay's port), "
        "got 'smtp': set it to one, or unset it for the default (25)")
FIX = "in `labloom serve`'s environment: fix it there and start serve again"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


def _add(home: Path, name: str, notify: str) -> None:
    """A schedule added from a shell whose SMTP settings are fine (not due for an hour)."""
    added = labloom(home, "schedule", "add", "flows.py:job", "--every", "1h", "--name", name,
                    "-p", f"out={home / name}.txt", "--notify", notify)
    assert added.returncode == 0, added.stderr


def _listed(home: Path) -> dict[str, Any]:
    out = labloom(home, "schedule", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)["schedules"]}


def _refusal_rows(home: Path) -> list[tuple[str, str]]:
    conn = store_of(home)
    assert conn is not None
    with conn:
        return [tuple(row) for row in conn.execute(
            "SELECT scheduler, schedule FROM schedule_refusals ORDER BY schedule").fetchall()]


def _forget_scheduler(home: Path, scheduler: str) -> None:
    """What ``liveness.sign_off`` does to a scheduler it finds gone."""
    conn = store_of(home)
    assert conn is not None
    with conn, conn.transaction():
        conn.execute("DELETE FROM schedulers WHERE id = ?", (scheduler,))
        conn.execute("DELETE FROM schedule_refusals WHERE scheduler NOT IN "
                     "(SELECT id FROM schedulers)")


@contextlib.contextmanager
def _refusing(home: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """`labloom serve` with LABLOOM_SMTP_PORT=smtp over a store with a schedule alerted by
    webhook (a serve refuses to start over one by mail), and "mailed" added by mail once it
    beats: the serve and its refusal as listed. Killed after the block if it still runs."""
    write(home / "flows.py", FLOW)
    _add(home, "hooked", "https://hooks.example.org/x")
    with _serve(home, LABLOOM_SMTP_PORT="smtp") as proc:
        _add(home, "mailed", "mailto:ops@hospital.test")
        [refusal] = wait_for(lambda: _listed(home)["mailed"]["refused_by"], 60, "the refusal")
        yield proc, refusal


@contextlib.contextmanager
def _serve(home: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`labloom serve` once it beats; killed after the block if it still runs."""
    proc = start_labloom(home, "serve", "--tick", "0.1", **env)
    try:
        wait_for(lambda: proc.poll() is not None or serving(home, proc), 60, "serve to beat")
        assert proc.poll() is None, proc.communicate()
        yield proc
    finally:
        stop(proc)


def _terminated(proc: subprocess.Popen[str]) -> str:
    """What serve said on stderr, stopped cleanly (SIGTERM)."""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


async def test_a_schedule_serve_refuses_is_listed_refused_until_serve_stops(
    jp_fetch: Any, labloom_home: Path, store_backend: str,
) -> None:
    home = labloom_home
    with _refusing(home) as (proc, refusal):
        assert (refusal["host"], refusal["pid"]) == (host_name(), proc.pid), refusal
        assert refusal["reason"] == f"its failure alerts go by mail, and {SAID} {FIX}"
        assert refusal["since"] and refusal["scheduler"].startswith(f"{proc.pid}-")
        listed = _listed(home)
        assert listed["hooked"]["refused_by"] is None
        assert listed["mailed"]["next_run"]  # still computed: the schedule is fine, serve is not
        text = labloom(home, "schedule", "list").stdout
        assert (f"REFUSED by `labloom serve` pid {proc.pid} on {host_name()} (since "
                f"{refusal['since']}): its failure alerts go by mail, and {SAID} {FIX}") in text
        assert text.count("REFUSED") == 1, text
        shown = {s["name"]: s for s in (await get(jp_fetch, "schedules"))["schedules"]}
        assert shown["mailed"]["refused_by"] == [refusal]
        assert shown["hooked"]["refused_by"] is None
        # Another serve's clean stop took this one's rows, its heartbeat seen stale (a store
        # away for a while): the next beat puts both back.
        _forget_scheduler(home, refusal["scheduler"])
        [back] = wait_for(lambda: _listed(home)["mailed"]["refused_by"], 60, "the refusal back")
        assert back["reason"] == refusal["reason"] and back["pid"] == proc.pid
        err = _terminated(proc)
    assert err.count("'mailed' is not run by this scheduler") == 1, err  # said once
    # stopped: it refuses nothing, and its rows went with its own
    assert _listed(home)["mailed"]["refused_by"] is None
    assert "REFUSED" not in labloom(home, "schedule", "list").stdout
    assert _refusal_rows(home) == []
    shown = {s["name"]: s for s in (await get(jp_fetch, "schedules"))["schedules"]}
    assert shown["mailed"]["refused_by"] is None


def test_a_killed_serve_refuses_nothing_and_the_next_serve_clears_its_rows(
    labloom_home: Path, store_backend: str,
) -> None:
    home = labloom_home
    with _refusing(home) as (proc, _refusal):
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert len(_refusal_rows(home)) == 1  # left by the killed serve, and not shown:
    assert _listed(home)["mailed"]["refused_by"] is None  # its pid is dead on this host
    # A serve whose relay settings are fine runs it; at its clean stop the dead one's rows go.
    with _serve(home) as good:
        assert _listed(home)["mailed"]["refused_by"] is None
        _terminated(good)
    assert _refusal_rows(home) == []


def test_a_refused_schedule_removed_and_added_again_by_webhook_is_not_refused(
    labloom_home: Path, store_backend: str,
) -> None:
    home = labloom_home
    with _refusing(home) as (proc, _refusal):
        assert labloom(home, "schedule", "remove", "mailed").returncode == 0
        wait_for(lambda: _refusal_rows(home) == [], 60, "serve to drop its refusal")
        _add(home, "mailed", "https://hooks.example.org/y")
        first_slot_in(home, "mailed", 0.5)  # run by this serve now: judged anew, not refused
        wait_for(lambda: [r for r in slot_rows(home) if r["schedule"] == "mailed"], 60,
                 "the run of the schedule added again")
        assert _listed(home)["mailed"]["refused_by"] is None
        assert _refusal_rows(home) == []
        err = _terminated(proc)
    assert err.count("'mailed' is not run by this scheduler") == 1, err


def _zone(home: Path, name: str, zone: str) -> None:
    """The schedule made nightly in ``zone``, as another host sharing the store may have
    written it (one whose time zone database knows a zone this host's does not)."""
    conn = store_of(home)
    assert conn is not None
    with conn:
        conn.execute("UPDATE schedules SET cron = '0 2 * * *', every = NULL, timezone = ? "
                     "WHERE name = ?", (zone, name))


async def test_a_schedule_serve_cannot_compute_is_listed_refused_until_it_can(
    jp_fetch: Any, labloom_home: Path, store_backend: str,
) -> None:
    # Its time zone unknown to serve's host: serve's log said so, once, and the listing's
    # `problem` judged it from the reading host (which may know the zone). Now serve says so.
    home = labloom_home
    write(home / "flows.py", FLOW)
    added = labloom(home, "schedule", "add", "flows.py:job", "--cron", "0 2 * * *",
                    "--timezone", "Europe/Berlin", "--name", "elsewhere",
                    "-p", f"out={home / 'elsewhere'}.txt")
    assert added.returncode == 0, added.stderr
    _add(home, "hooked", "https://hooks.example.org/x")
    _zone(home, "elsewhere", "Mars/Olympus_Mons")
    with _serve(home) as proc:
        [refusal] = wait_for(lambda: _listed(home)["elsewhere"]["refused_by"], 60,
                             "the refusal")
        reason = ("its times cannot be computed on serve's host (ZoneInfoNotFoundError: 'No "
                  "time zone found with key Mars/Olympus_Mons'): `labloom schedule remove "
                  "elsewhere`, then add it again with a time zone and cron expression that "
                  "host knows")
        assert refusal["reason"] == reason, refusal
        assert (refusal["host"], refusal["pid"]) == (host_name(), proc.pid), refusal
        assert _listed(home)["hooked"]["refused_by"] is None
        text = labloom(home, "schedule", "list").stdout
        assert (f"REFUSED by `labloom serve` pid {proc.pid} on {host_name()} (since "
                f"{refusal['since']}): {reason}") in text, text
        shown = {s["name"]: s for s in (await get(jp_fetch, "schedules"))["schedules"]}
        assert shown["elsewhere"]["refused_by"] == [refusal]
        # The zone known again (written by a host that knows it): serve runs it, and drops it.
        _zone(home, "elsewhere", "Europe/Berlin")
        wait_for(lambda: _refusal_rows(home) == [], 60, "serve to drop its refusal")
        assert _listed(home)["elsewhere"]["refused_by"] is None
        err = _terminated(proc)
    assert err.count("Mars/Olympus_Mons") == 1, err  # said once, not at every tick
    assert "labloom schedule remove elsewhere" in err


def test_a_refusal_by_mail_gives_way_to_one_by_time_zone_and_back(
    labloom_home: Path, store_backend: str,
) -> None:
    home = labloom_home

    def refused_for(start: str) -> list[dict[str, Any]]:
        return [r for r in _listed(home)["mailed"]["refused_by"] or []
                if r["reason"].startswith(start)]

    with _refusing(home) as (proc, refusal):
        _zone(home, "mailed", "Mars/Olympus_Mons")
        wait_for(lambda: refused_for("its times cannot be computed"), 60, "the zone's refusal")
        assert _refusal_rows(home) == [(refusal["scheduler"], "mailed")]  # replaced, not added
        _zone(home, "mailed", "Europe/Berlin")  # computable: judged anew, by mail again
        [again] = wait_for(lambda: refused_for("its failure alerts go by mail"), 60,
                           "the mail refusal again")
        assert again["reason"] == refusal["reason"]
        assert _refusal_rows(home) == [(refusal["scheduler"], "mailed")]
        err = _terminated(proc)
    assert err.count("Mars/Olympus_Mons") == 1, err


def test_a_refused_schedule_paused_is_not_refused_and_is_judged_again_once_resumed(
    labloom_home: Path, store_backend: str,
) -> None:
    # Before, the refusal stayed while the schedule was paused: the list said a paused
    # schedule was refused, though serve would not run it anyway.
    home = labloom_home
    with _refusing(home) as (proc, refusal):
        proc.send_signal(signal.SIGSTOP)  # a serve between ticks (or an older one): its row stays
        try:
            assert labloom(home, "schedule", "pause", "mailed").returncode == 0
            listed = _listed(home)["mailed"]
            assert listed["paused"] and listed["refused_by"] is None, listed
            assert "REFUSED" not in labloom(home, "schedule", "list").stdout
        finally:
            proc.send_signal(signal.SIGCONT)
        wait_for(lambda: _refusal_rows(home) == [], 60, "serve to drop the paused one's refusal")
        assert labloom(home, "schedule", "resume", "mailed").returncode == 0
        [again] = wait_for(lambda: _listed(home)["mailed"]["refused_by"], 60, "the refusal again")
        assert (again["reason"], again["pid"]) == (refusal["reason"], proc.pid), again
        err = _terminated(proc)
    assert err.count("'mailed' is not run by this scheduler") == 2, err  # judged again: said again
