"""Test-only hooks, on the PYTHONPATH a test gives the processes it starts (`labloom serve`,
its runs, the CLI); each acts only when its variable is set.

LABLOOM_TEST_STALE_AFTER (seconds): ``liveness.STALE_AFTER`` in every such process, set
before any module reads it (``alert_outbox`` imports the number itself): a test of what a
scheduler does once another's heartbeat is stale waits that long, not 30 s. Every process of
the test must be given the same value, or they would judge the same heartbeat differently.

LABLOOM_TEST_ORPHANED (seconds): ``unanswered_commits.ORPHANED``, the idle time after which
PostgreSQL ends a short transaction, as tests/pg_commit_cut.py (``held=True``) sets it in the
test process: a transaction left open by a cut its server never noticed ends in a few seconds.

For tests/test_serve_interrupted_runs.py: in a run process serve started (LABLOOM_SCHEDULE
set) whose schedule LABLOOM_TEST_LANDINGS names (a JSON object: schedule -> [point, its n-th
pass, counted after this point]), the run waits at that point for the SIGTERM of serve's stop,
and takes it there (``interrupt_points.SignalAwaited``); it writes the point to
LABLOOM_TEST_HERE/<schedule> as it gets there. Any other process (serve itself, the CLI) is
left alone."""

import json
import os
import sys
from pathlib import Path


def _shorten_staleness() -> None:
    stale_after = os.environ.get("LABLOOM_TEST_STALE_AFTER")
    if stale_after is None:
        return
    from labloom.schedule import liveness

    liveness.STALE_AFTER = float(stale_after)


def _shorten_orphaned() -> None:
    seconds = os.environ.get("LABLOOM_TEST_ORPHANED")
    if not seconds:
        return
    from labloom.store import unanswered_commits

    unanswered_commits.ORPHANED = int(seconds)


def _await_the_signal() -> None:
    landings = json.loads(os.environ.get("LABLOOM_TEST_LANDINGS", "{}"))
    schedule = os.environ.get("LABLOOM_SCHEDULE", "")
    if schedule not in landings:
        return
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/: interrupt_points
    from interrupt_points import SignalAwaited

    at, number, after = landings[schedule]
    here = Path(os.environ["LABLOOM_TEST_HERE"]) / schedule
    sys.settrace(SignalAwaited(here, number, at=at, after=after))


_shorten_staleness()
_shorten_orphaned()
_await_the_signal()
