"""`labloom run` interrupted (Ctrl-C, or SIGTERM from `labloom serve` or a job runner) anywhere
from the run's start to its end: the command exits 130 and the run is recorded Cancelled (or
Completed), never left Running.

The first test lands the interrupt at chosen points of the command's own process with
``interrupt_points.Landing``, in labloom's modules and in ``threading`` (the run's own thread
starting: ``Thread.start`` waits until it runs). A Ctrl-C there came before ``flow.run``
returned the run: the command did not know of it, exited at once, and the thread that was to
end the run died with the process: the run stayed Running in the store. One landing after
the run's own thread started (its tasks running) but before ``flow.run`` returned wrote no
``--report``: `labloom serve` recorded the slot crashed, with no run, for a run recorded
Cancelled. The second lands one as the run is reported, after its end: a SIGTERM there
found SIGTERM's own handler back and killed the command before its report. The third sends
real signals at varied moments of real runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, labloom, slot_rows, stop, write
from labloom.schedule.stored_schedules import claim_due, get, store

FLOW = """
    import time

    from labloom import flow, task, unmapped

    @task
    def nap(i: int, seconds: float) -> int:
        time.sleep(seconds)
        return i

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    @flow(executor="threads")
    def sweep(seconds: float = 0.01) -> int:
        return total(nap.map(range(8), seconds=unmapped(seconds)))
"""

# The command with a Ctrl-C (or SIGTERM: argv[3]) at the argv[2]-th point argv[1] after the
# run's start in the engine, or after the point argv[5] ("": none, and the points are written
# out); its report: argv[4]. With LABLOOM_SCHEDULE, a run as `labloom serve` starts one.
DRIVER = f"""
    import json, os, signal, sys
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from interrupt_points import Landing
    from labloom.cli import main

    at = sys.argv[1] or None
    points = [] if at is None else None
    sys.settrace(Landing(int(sys.argv[2]), points, also=("/threading.py",), at=at,
                         after=sys.argv[5] if sys.argv[5:] else "core/engine.py",
                         signum=getattr(signal, sys.argv[3])))
    try:
        origin = ["--origin", "schedule"] if "LABLOOM_SCHEDULE" in os.environ else []
        status = main(["run", "flows.py:sweep", "--report", sys.argv[4], *origin])
    finally:
        sys.settrace(None)
    if points is not None:
        open("points.json", "w").write(json.dumps(points))
    sys.exit(status)
"""


def _drive(home: Path, at: str, nth: int = 0, signum: str = "SIGINT",
           report: str = "count.json", *after: str, **env: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "driver.py", at, str(nth), signum, report, *after], cwd=home,
        capture_output=True, text=True, env=cli_env(home, LABLOOM_PROGRESS="0", **env),
        timeout=120,
    )


def _slot(home: Path, name: str) -> dict[str, str]:
    """A slot of a new schedule ``name``, claimed as `labloom serve` does: the environment
    of the run it starts."""
    added = labloom(home, "schedule", "add", "flows.py:sweep", "--every", "1h", "--name", name)
    assert added.returncode == 0, added.stderr
    with store() as conn:
        claim = claim_due(conn, get(conn, name), "test", time.time() + 7200)
    assert claim is not None
    return {"LABLOOM_SCHEDULE": name, "LABLOOM_SCHEDULED_TIME": repr(claim.slot)}


def _landings(points: list[str], about: int) -> list[tuple[str, int]]:
    """About ``about`` landings spread over ``points`` (each a whole run), as (where, its
    n-th pass there); threading's own left out (see the first test)."""
    chosen: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for where in points:
        seen[where] = seen.get(where, 0) + 1
        if not where.startswith("threading.py"):
            chosen.append((where, seen[where]))
    assert len(chosen) > 3, points
    return chosen[:: max(1, len(chosen) // about)]


def counted_points(home: Path) -> list[str]:
    """The points a whole run passes (``driver.py`` with no landing, FLOW and DRIVER written
    to ``home`` first), in order: what the landings are chosen from."""
    write(home / "flows.py", FLOW)
    write(home / "driver.py", DRIVER)
    counted = _drive(home, "")
    assert counted.returncode == 0, counted.stderr
    return list(json.loads((home / "points.json").read_text()))


def handle_point(points: list[str]) -> int:
    """Where the run's first point in the engine is (its handle, as ``flow.run`` starts it)."""
    runs = next(i for i, where in enumerate(points)
                if where.startswith("core/flows.py") and where.endswith(" run"))
    return next(i for i in range(runs, len(points))
                if points[i].startswith("core/engine.py") and points[i].endswith(" handle"))


def _states(home: Path) -> list[str]:
    return [run["state"] for run in json.loads(labloom(home, "runs", "--json").stdout)]


def test_labloom_run_interrupted_as_its_run_starts_records_it_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path))
    points = counted_points(tmp_path)
    begins = next(i for i, where in enumerate(points) if where.startswith("core/engine.py"))
    waits = next(i for i, where in enumerate(points) if where.startswith("core/waiting.py"))
    # Threads starting (the store's, the run's own: ``Thread.start`` waits until it runs):
    # each point of ``Thread.start`` between the run's start in the engine and the command's
    # wait for its end. (Not those inside ``Condition.wait``: threading's own lock can be left
    # released there, a matter of Python's.)
    chosen: list[tuple[str, int]] = []
    for where in points[begins:waits]:
        if where.startswith("threading.py") and where.endswith(" start"):
            chosen.append((where, 1 + sum(1 for c in chosen if c[0] == where)))
    assert len(chosen) > 3, points[begins:waits]
    reported = {}
    for i, (at, nth) in enumerate(chosen):
        # Ctrl-C and SIGTERM in turn (`labloom serve` and job runners send SIGTERM), to runs
        # as serve starts them.
        interrupted = _drive(tmp_path, at, nth, ("SIGINT", "SIGTERM")[i % 2], f"{i}.json",
                             **_slot(tmp_path, f"s{i}"))
        assert interrupted.returncode == 130, (at, nth, interrupted.stderr)
        # Each landing made a run (counted below): the run that began is reported.
        report = tmp_path / f"{i}.json"
        assert report.is_file(), (at, nth, interrupted.stderr)
        data = json.loads(report.read_text())
        reported[data["run_id"]] = data["state"]
    runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    states = [run["state"] for run in runs]
    # One record a run (the count's Completed first), none left Running nor missing.
    assert len(states) == 1 + len(chosen) and set(states) <= {"Cancelled", "Completed"}, states
    # Each report says the store's run and its recorded end.
    recorded = {run["id"]: run["state"] for run in runs}
    assert all(recorded[run_id] == state for run_id, state in reported.items()), (
        reported, recorded)
    assert len(reported) == len(chosen), chosen
    # Each slot names its run: a serve that replaces a killed one follows it (unnamed, it
    # called the slot lost: "its scheduler stopped before the run started").
    named = {row["schedule"]: row["run_id"] for row in slot_rows(tmp_path)}
    assert named == {f"s{i}": said for i, said in enumerate(reported)}, (named, reported)


def test_labloom_run_interrupted_as_the_store_attaches_its_run_records_it(
    tmp_path: Path,
) -> None:
    # A landing inside the store's attach (its writer, its first connection, its subscriber):
    # the run went on unrecorded, and the command reported a Cancelled run the store never had.
    points = counted_points(tmp_path)
    # From the attach's first point to the engine's next (the observers' loop goes on).
    begins = next(i for i, where in enumerate(points)
                  if where.startswith("store/__init__.py") and where.endswith("attach"))
    ends = next(i for i in range(begins, len(points))
                if points[i].startswith(("core/observers.py", "core/engine.py")))
    chosen = _landings(points[begins:ends], 6)
    for i, (at, nth) in enumerate(chosen):
        done = _drive(tmp_path, at, nth, ("SIGINT", "SIGTERM")[i % 2], f"{i}.json")
        assert done.returncode == 130, (at, nth, done.stderr)
        said = json.loads((tmp_path / f"{i}.json").read_text())
        shown = labloom(tmp_path, "show", said["run_id"], "--json")
        assert shown.returncode == 0, (at, nth, said, shown.stderr)  # the store has the run
        assert json.loads(shown.stdout)["state"] == said["state"] == "Cancelled", (at, nth)


def test_labloom_run_interrupted_as_the_run_observers_are_called_reports_what_is_recorded(
    tmp_path: Path,
) -> None:
    # Landings from the run's handle in the engine to the store's first step inside its
    # attach's hold: the run observers being called (the command's, the store's). One after
    # the command's observer and before the store's hold had the command report a Cancelled
    # run the store never had (the slot `labloom serve` recorded named it, `labloom show`
    # knew nothing of it); one before the command's observer, a run it never knew of.
    points = counted_points(tmp_path)
    begins = handle_point(points)
    ends = next(i for i in range(begins, len(points)) if points[i].startswith("store/db.py"))
    chosen = _landings(points[begins:ends], len(points))  # each of them
    reported = set()
    for i, (at, nth) in enumerate(chosen):
        done = _drive(tmp_path, at, nth, ("SIGINT", "SIGTERM")[i % 2], f"{i}.json",
                      points[begins])
        assert done.returncode == 130, (at, nth, done.stderr)
        if (tmp_path / f"{i}.json").is_file():
            said = json.loads((tmp_path / f"{i}.json").read_text())
            assert said["state"] == "Cancelled", (at, nth, said)
            reported.add(said["run_id"])
    runs_left = json.loads(labloom(tmp_path, "runs", "--json", "--limit", "1000").stdout)
    recorded = {run["id"] for run in runs_left if run["state"] == "Cancelled"}
    # Each run the store has is reported, each one reported is in the store: both or neither.
    assert reported == recorded, (sorted(reported - recorded), sorted(recorded - reported))
    assert len(runs_left) == 1 + len(recorded), runs_left  # and the count's, Completed
    # The landings among the observers' calls made runs, each recorded and reported.
    observers = [i for i, (at, _n) in enumerate(chosen) if at.startswith("core/observers.py")]
    assert observers and all((tmp_path / f"{i}.json").is_file() for i in observers), chosen


def test_labloom_run_interrupted_as_its_run_is_reported_writes_the_report(
    tmp_path: Path,
) -> None:
    # A SIGTERM as the run ended (`labloom serve` stopping, a job runner's time up) found
    # SIGTERM's own handler back: the command died before its report, and serve recorded
    # the slot terminated, with no run, for a run recorded Completed; a Ctrl-C there ended it
    # with status 130 and no report either.
    points = counted_points(tmp_path)
    # From the wait for the run's end (entered once) to the command's return, threading's
    # own left out (see the first test). A landing inside the wait ends the run Cancelled;
    # a machine slower than this count's waits there longer, and moves the landings with
    # the same numbers into the wait (their numbers are counted from its start).
    waits = points.index(next(w for w in points if w.startswith("core/waiting.py")))
    end = next(i for i in range(waits, len(points)) if points[i].startswith("cli/__init__.py"))
    chosen = _landings(points[waits:end], 15)
    ended = []
    for i, (at, nth) in enumerate(chosen):
        done = _drive(tmp_path, at, nth, ("SIGTERM", "SIGINT")[i % 2], f"{i}.json",
                      points[waits])
        assert done.returncode == 130, (at, nth, done.stderr)  # it landed
        assert (tmp_path / f"{i}.json").is_file(), (at, nth, done.stderr)
        said = json.loads((tmp_path / f"{i}.json").read_text())
        shown = json.loads(labloom(tmp_path, "show", said["run_id"], "--json").stdout)
        assert said["state"] == shown["state"], (at, nth, said, shown)
        ended.append(said["state"])
    # The last landings came after the run's end, as it was reported.
    assert set(ended) <= {"Cancelled", "Completed"} and ended[-1] == "Completed", ended


def test_labloom_run_signalled_at_varied_moments_never_leaves_its_run_running(
    tmp_path: Path,
) -> None:
    write(tmp_path / "flows.py", FLOW)
    signals = (signal.SIGINT, signal.SIGTERM)
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-m", "labloom", "run", "flows.py:sweep", "-p", "seconds=0.2"],
            cwd=tmp_path,
            env=cli_env(tmp_path, LABLOOM_PROGRESS="0"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        try:
            # From before the flow's module is loaded to after the run's end, on a loaded
            # machine or a quiet one: the moments spread over 0.2-1.85 s.
            time.sleep(0.2 + 0.15 * attempt)
            proc.send_signal(signals[attempt % 2])
            _out, err = proc.communicate(timeout=120)
        finally:
            stop(proc)
        # (Killed by the signal itself: it came while Python imported, before any run; or a
        # Ctrl-C before Python ran ``-m`` at all, on a loaded machine: status 1, as it imported
        # runpy or, earlier still, the site module.)
        early = proc.returncode == 1 and err.startswith((
            "Could not import runpy module", "Fatal Python error: init_import_site"))
        assert early or proc.returncode in (0, 130, -signals[attempt % 2]), (
            attempt, proc.returncode, err)
    states = _states(tmp_path)
    assert set(states) <= {"Cancelled", "Completed"}, states
