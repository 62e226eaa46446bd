"""`labloom serve` stopped while the runs it started are at chosen points of their start: each
slot is recorded with the run its process made (or with none, when it made none), the run
Cancelled in the store, its alert sent; no run is left Running, none is left unnamed.

A real serve (grace 0) starts one `labloom run` per schedule, due at once. Each run process
waits at its own point for the SIGTERM serve's stop sends it (``serve_child_hook``, on the
PYTHONPATH given to serve, acting only in those processes), and takes it there: before the
run observers are called; among them, after the command's and before the store's (the
command reported, and serve recorded in the slot, a Cancelled run the store never had);
as the store attaches the run; once the run goes, its tasks running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from cli_helpers import (
    SRC,
    Hook,
    first_slot_in,
    labloom,
    slot_rows,
    start_labloom,
    stop,
    wait_for,
    write,
)
from test_cli_interrupt_anywhere import FLOW, counted_points, handle_point

HOOK = Path(__file__).parent / "serve_child_hook"


def _landings(count: Path) -> tuple[str, dict[str, tuple[str, int]]]:
    """Where each run process takes the signal, from the points of a run `labloom run`
    makes: the point they are counted after, and each schedule's point and its pass there."""
    points = counted_points(count)
    begins = handle_point(points)

    def first(prefix: str) -> tuple[str, int]:
        at = next(i for i in range(begins, len(points)) if points[i].startswith(prefix))
        return points[at], points[begins:at + 1].count(points[at])

    return points[begins], {
        "before": (points[begins], 1),
        "observers": first("core/observers.py"),
        "attaching": first("store/db.py"),
        "running": first("core/waiting.py"),
    }


def test_serve_stopped_as_its_runs_start_records_each_slot_with_its_run(tmp_path: Path) -> None:
    home, here = tmp_path / "home", tmp_path / "here"
    here.mkdir()
    after, landings = _landings(tmp_path / "count")
    write(home / "flows.py", FLOW)
    hook = Hook([])
    for name in landings:
        added = labloom(home, "schedule", "add", "flows.py:sweep", "--every", "1h", "--name",
                        name, "-p", "seconds=60", "--notify", hook.url)
        assert added.returncode == 0, added.stderr
        first_slot_in(home, name, 0)
    proc = start_labloom(
        home, "serve", "--tick", "0.1", "--grace", "0", LABLOOM_PROGRESS="0",
        PYTHONPATH=f"{HOOK}{os.pathsep}{SRC}", LABLOOM_TEST_HERE=str(here),
        LABLOOM_TEST_LANDINGS=json.dumps({name: [at, n, after]
                                          for name, (at, n) in landings.items()}),
    )
    try:
        wait_for(lambda: proc.poll() is not None or len(list(here.iterdir())) == len(landings),
                 240, "each run process at its point")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)  # serve's stop: SIGTERM to each run process
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        stop(proc)
        hook.close()
    # Each process took the signal at its point.
    assert {p.name: p.read_text() for p in here.iterdir()} == {
        name: at for name, (at, _n) in landings.items()}
    slots = {row["schedule"]: row for row in slot_rows(home)}
    runs = {run["id"]: run for run in json.loads(
        labloom(home, "runs", "--json", "--limit", "100").stdout)}
    alerts = {body["schedule"]: body for body in hook.bodies}
    # Before the run observers: no run made, none recorded; the slot says terminated.
    before = slots.pop("before")
    assert (before["status"], before["run_id"]) == ("terminated", None), before
    assert (alerts["before"]["state"], alerts["before"]["run_id"]) == ("terminated", None)
    for name, slot in slots.items():
        run = runs.get(str(slot["run_id"]))
        assert run is not None, (name, slot)  # the slot's run is the store's
        assert (slot["status"], slot["exit_code"], run["state"]) == (
            "cancelled", 130, "Cancelled"), (name, slot, run)
        assert set(run["counts"]) <= {"Cancelled", "Completed"}, (name, run["counts"])
        assert (alerts[name]["run_id"], alerts[name]["state"]) == (run["id"], "Cancelled")
    # Nothing lost: each run the store has is a slot's, none of them left Running.
    assert set(runs) == {slot["run_id"] for slot in slots.values()}, (runs, slots)
