"""Two "hosts" on one store: processes with different host identities (LABLOOM_HOST) and
separate homes, sharing one database (PostgreSQL, or one SQLite file) and one result folder.
They see each other's runs, share one limit, never run a schedule slot twice, mark each other's
dead runs Crashed by heartbeat, and retry each other's runs reusing the results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from store_helpers import SRC, peak

FLOWS = """
import json, os, sys, time
from pathlib import Path
from labloom import flow, task

TRACE = Path(os.environ["TRACE"])

def note(what):
    with TRACE.open("a") as handle:
        handle.write(f"{what} {os.environ['LABLOOM_HOST']}\\n")

@task(tags=["db"])
def hold(i):
    started = time.time()
    time.sleep(0.3)
    return [started, time.time()]

@flow
def limited(n):
    return hold.map(range(n))

@task(tags=["db"])
def hold_long(i):
    started = time.time()
    note(f"hold{i}")
    time.sleep(1.0)
    return [started, time.time()]

@flow
def limited_long(n):
    return hold_long.map(range(n))

@task
def load(i):
    note(f"load{i}")
    return i * 10

@task
def fit(values):
    note("fit")
    if not Path(os.environ["FIXED"]).exists():
        raise RuntimeError("not fixed yet")
    return sum(values)

@flow
def pipeline(n):
    return fit(load.map(range(n)))

@task
def stall():
    time.sleep(120)

@flow
def stuck():
    stall()

@task
def nap():
    # Naps until the test, having seen the run Cancelled, lets it go (a long deadline only so
    # a broken test cannot hang): the run cannot complete before the cancel is asked for.
    release, deadline = TRACE.with_name("nap-release"), time.monotonic() + 300
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

@flow
def napping():
    nap()

@task
def stamp(out):
    with open(out, "a") as handle:
        handle.write(f"{os.environ['LABLOOM_SCHEDULED_TIME']} {os.environ['LABLOOM_HOST']}\\n")

@flow
def ticking(out: str):
    stamp(out)

if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    run = {"limited": lambda: limited.run(n=5), "limited_long": lambda: limited_long.run(n=3),
           "pipeline": lambda: pipeline.run(n=3),
           "stuck": lambda: stuck.run(), "napping": lambda: napping.run()}[name]()
    Path(out).write_text(json.dumps({"id": run.id, "state": run.state.value,
                                     "value": run.result() if name.startswith("limited")
                                     else None}))
"""


HEARTBEAT = "8"  # seconds without a beat until a run counts as crashed


class Host:
    """One host: its identity, its own home, the shared store and result folder."""

    def __init__(self, name: str, root: Path, url: str, shared_results: Path) -> None:
        self.name = name
        self.home = root / f"home-{name}"
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LABLOOM_")}
        self.env.update(
            PYTHONPATH=str(SRC), LABLOOM_HOME=str(self.home), LABLOOM_HOST=name,
            LABLOOM_DATABASE_URL=url, LABLOOM_RESULTS_URL=f"file://{shared_results}",
            LABLOOM_RESULTS="all", LABLOOM_PROGRESS="0", LABLOOM_HEARTBEAT_TIMEOUT=HEARTBEAT,
            TRACE=str(root / "trace.txt"), FIXED=str(root / "fixed"),
        )

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, *argv], env=self.env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def flow(self, name: str) -> subprocess.Popen[str]:
        return self.start(str(self.root / "flows.py"), name, str(self.root / f"{name}-{self.name}.json"))

    def result(self, name: str) -> Any:
        return json.loads((self.root / f"{name}-{self.name}.json").read_text())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labloom", *args], env=self.env,
                              cwd=self.root, capture_output=True, text=True, timeout=120)

    def runs(self) -> list[dict[str, Any]]:
        done = self.cli("runs", "--json", "--limit", "100")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def hosts(tmp_path: Path, store_backend: str) -> Iterator[tuple[Host, Host]]:
    url = os.environ.get("LABLOOM_DATABASE_URL") or f"sqlite:///{tmp_path / 'team.db'}"
    (tmp_path / "flows.py").write_text(FLOWS)
    shared = tmp_path / "shared-results"
    yield Host("host-a", tmp_path, url, shared), Host("host-b", tmp_path, url, shared)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err




def test_runs_are_shared_and_one_limit_holds_across_hosts(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a.cli("limit", "set", "db", "2").returncode == 0
    assert b.cli("limit", "list", "--json").stdout.count('"limit": 2') == 1
    procs = [a.flow("limited"), b.flow("limited")]
    for proc in procs:
        finish(proc)
    spans = a.result("limited")["value"] + b.result("limited")["value"]
    assert len(spans) == 10 and peak(spans) == 2
    for host in (a, b):  # each sees both runs, with where they ran
        assert sorted(r["host"] for r in host.runs()) == ["host-a", "host-b"]
    assert [r["host"] for r in a.runs() if r["host"] == "host-b"] == ["host-b"]


def test_a_killed_hosts_run_is_marked_crashed_by_the_other(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    proc = a.flow("stuck")
    reads: list[tuple[float, float, dict[str, Any]]] = []  # B's reads: began, ended, the run

    def read_on_b() -> dict[str, Any]:
        began = time.time()
        [run] = b.runs()
        reads.append((began, time.time(), run))
        return run

    try:
        wait_for(lambda: any(r["state"] == "Running" for r in b.runs()), 60, "A's run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        run = wait_for(lambda: (seen := read_on_b())["state"] == "Crashed" and seen, 60,
                       "B to mark it Crashed")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run["host"] == "host-a" and "no sign of life" in run["message"]
    assert "host-a" in run["message"]
    # B cannot see A's pid: only the heartbeat tells, and only once its timeout has passed.
    # The store says when: the run ends at A's last beat, its task run was Cancelled when B
    # marked it (both by the store's clock). Asserted so, not by how soon after the kill one
    # read of B (a CLI start) ended: on a loaded machine it ended past the timeout (session 49).
    shown = b.cli("show", run["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    [stall] = json.loads(shown.stdout)["task_runs"]
    [marked] = [change["time"] for change in stall["history"] if change["state"] == "Cancelled"]
    last_beat, timeout = run["ended"], float(HEARTBEAT)
    assert marked - last_beat > timeout
    # and by the first read after it: each read of B that ended before the timeout saw the
    # run Running, each that began after it saw it Crashed.
    for began, ended, seen in reads:
        if ended < last_beat + timeout - CLOCKS:
            assert seen["state"] == "Running", seen
        if began > last_beat + timeout + CLOCKS:
            assert seen["state"] == "Crashed", seen


# Seconds the store's clock and this process's may differ on one machine: B's offset to the
# PostgreSQL server's clock is measured by a round trip, which a loaded machine slows.
CLOCKS = 0.5


AHEAD = 60.0  # seconds host B's clock runs ahead: well past the heartbeat timeout

# This host's clock: CLOCK_AHEAD seconds ahead of the machine's (behind when negative), set
# CLOCK_STEP seconds forward on SIGUSR1 and back on SIGUSR2, as an NTP step sets it.
HOST_CLOCK = """
import os, signal, time
_real = time.time
_ahead = [float(os.environ.get("CLOCK_AHEAD", "0"))]
time.time = lambda: _real() + _ahead[0]

def _set(signum, frame):
    _ahead[0] += float(os.environ["CLOCK_STEP"]) * (1 if signum == signal.SIGUSR1 else -1)

if os.environ.get("CLOCK_STEP"):
    signal.signal(signal.SIGUSR1, _set)
    signal.signal(signal.SIGUSR2, _set)
"""


def host_clock(host: Host, root: Path, ahead: float = 0.0, step: float | None = None) -> None:
    """The host's processes read HOST_CLOCK's time (test_schedule_clock sets it, too)."""
    folder = root / "host-clock"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOST_CLOCK)
    host.env.update(PYTHONPATH=f"{folder}{os.pathsep}{SRC}", CLOCK_AHEAD=str(ahead))
    if step is not None:
        host.env["CLOCK_STEP"] = str(step)


@pytest.mark.postgresql_only  # one SQLite file is one machine's: one clock
def test_a_host_whose_clock_runs_ahead_judges_the_others_by_the_servers_clock(
    hosts: tuple[Host, Host], store_backend: str, tmp_path: Path
) -> None:
    # B's clock a minute ahead (no NTP): it marked A's live run Crashed at its first read, and
    # swept A's slot as dead, so a limit of 1 let two task runs in at once.
    a, b = hosts
    host_clock(b, tmp_path, ahead=AHEAD)
    proc = a.flow("stuck")
    try:
        wait_for(lambda: any(r["state"] == "Running" for r in a.runs()), 60, "A's run")
        [run] = b.runs()
        assert run["state"] == "Running", run["message"]
    finally:
        proc.kill()
        proc.wait(60)
    assert a.cli("limit", "set", "db", "1").returncode == 0
    first = a.flow("limited_long")
    trace = tmp_path / "trace.txt"
    wait_for(lambda: trace.exists() and "hold0 host-a" in trace.read_text(), 60, "A's slot")
    second = b.flow("limited_long")  # finds the tag full, with A's slot fresh
    for proc in (first, second):
        finish(proc)
    spans = a.result("limited_long")["value"] + [
        [start - AHEAD, end - AHEAD] for start, end in b.result("limited_long")["value"]
    ]
    assert len(spans) == 6 and peak(spans) == 1


def running_slots(conn: Any) -> list[Any]:
    return conn.execute(
        "SELECT s.status, s.run_id, r.state FROM schedule_slots s JOIN flow_runs r "
        "ON r.id = s.run_id WHERE s.status = 'running' AND r.state = 'Running'"
    ).fetchall()


@pytest.mark.postgresql_only  # one SQLite file is one machine's: one clock
@pytest.mark.timeout(180)
def test_a_host_whose_clock_runs_ahead_sees_the_others_scheduler_alive(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    # Schedulers' heartbeats were stamped and judged by each host's clock: B, a minute ahead,
    # saw A's `labloom serve` as NOT RUNNING and, at its first look, settled the slot of A's
    # live scheduled run as crashed (its run's heartbeat, stamped by the server's clock,
    # judged by B's).
    from labloom.store.db import get_database

    a, b = hosts
    host_clock(b, tmp_path, ahead=AHEAD)
    added = a.cli("schedule", "add", f"{tmp_path / 'flows.py'}:stuck", "--every", "2s")
    assert added.returncode == 0, added.stderr
    server = a.start("-m", "labloom", "serve", "--tick", "0.05", "--grace", "1")
    try:
        with get_database().connect() as conn:
            wait_for(lambda: running_slots(conn), 60, "A's scheduled run")
            listed = b.cli("schedule", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            [seen] = json.loads(listed.stdout)["scheduler"]["schedulers"]
            assert seen["host"] == "host-a" and seen["alive"], seen
            assert abs(seen["heartbeat_age"]) < 10, seen
            assert running_slots(conn)  # not settled as crashed by B's look
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_a_cancel_requested_on_b_stops_the_run_on_a(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    proc = a.flow("napping")
    try:
        wait_for(lambda: any(r["state"] == "Running" for r in b.runs()), 60, "A's run")
        [run] = b.runs()
        asked = b.start("-c", "import sys; from labloom.store.cancel import request_cancel;"
                        "print(request_cancel(sys.argv[1], 'stop it from host-b'))", run["id"])
        out, err = asked.communicate(timeout=60)
        assert asked.returncode == 0 and out.strip() == "Running", err
        # The nap holds until released below, so only the request can end the run.
        wait_for(lambda: b.runs()[0]["state"] == "Cancelled", 60, "A to act on the request")
        assert "stop it from host-b" in b.runs()[0]["message"]
    finally:
        (a.root / "nap-release").write_text("")
        proc.communicate(timeout=60)
    assert a.result("napping")["state"] == "Cancelled"


def test_a_retry_on_b_reuses_what_a_computed(hosts: tuple[Host, Host], tmp_path: Path) -> None:
    a, b = hosts
    failed = a.flow("pipeline")
    failed.communicate(timeout=120)
    first = a.result("pipeline")
    assert first["state"] == "Failed"
    (tmp_path / "fixed").write_text("yes")
    done = b.cli("retry", first["id"])
    assert done.returncode == 0, done.stderr
    trace = (tmp_path / "trace.txt").read_text().split("\n")
    # The loads ran once, on A; only the fit ran again, on B, with A's results.
    assert sorted(line for line in trace if line.startswith("load")) == [
        "load0 host-a", "load1 host-a", "load2 host-a"
    ]
    assert [line for line in trace if line.startswith("fit")] == ["fit host-a", "fit host-b"]
    retried = next(r for r in b.runs() if r["retry_of"] == first["id"])
    assert retried["state"] == "Completed" and retried["host"] == "host-b"
    assert list((tmp_path / "shared-results").rglob("*.pkl"))  # the values, not the store


@pytest.mark.timeout(180)
def test_two_schedulers_on_two_hosts_never_run_a_slot_twice(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    a, b = hosts
    out = tmp_path / "ticks.txt"
    added = a.cli("schedule", "add", f"{tmp_path / 'flows.py'}:ticking", "--every", "1s",
                  "-p", f"out={out}", "--allow-overlap")
    assert added.returncode == 0, added.stderr
    servers = [a.start("-m", "labloom", "serve", "--tick", "0.05"),
               b.start("-m", "labloom", "serve", "--tick", "0.05")]
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 6, 60,
                 "six scheduled runs")
        health = json.loads(b.cli("schedule", "list", "--json").stdout)["scheduler"]
        assert sorted(d["host"] for d in health["schedulers"]) == ["host-a", "host-b"]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()
    slots = [line.split()[0] for line in out.read_text().splitlines()]
    assert len(slots) == len(set(slots)) >= 6
