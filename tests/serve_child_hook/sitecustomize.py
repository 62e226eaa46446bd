"""For tests/test_serve_interrupted_runs.py, on the PYTHONPATH it gives `labloom serve`: in a
run process serve started (LABLOOM_SCHEDULE set) whose schedule LABLOOM_TEST_LANDINGS names
(a JSON object: schedule -> [point, its n-th pass, counted after this point]), the run waits
at that point for the SIGTERM of serve's stop, and takes it there
(``interrupt_points.SignalAwaited``); it writes the point to LABLOOM_TEST_HERE/<schedule> as
it gets there. Any other process (serve itself, the CLI) is left alone."""

import json
import os
import sys
from pathlib import Path


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


_await_the_signal()
