"""JupyterLab's Interrupt button pressed at varied moments of short %%flow cells in a real kernel:
each cell ends, each run is Cancelled or Completed in the kernel and in the store (never left
Running), and a last cell's flow completes.

The moments spread from the cell's start (the run being made and announced) to after its end
(an interrupt to an idle kernel does nothing), over both in-process executors: the local one
runs the task calls in the kernel's main thread, where the interrupt lands."""

from __future__ import annotations

import time
from pathlib import Path

from kernel_helpers import error_text, kernel

TASKS = """%%tasks
import time

def nap(i, seconds):
    time.sleep(seconds)
    return i
"""

CELL = "%%flow swept --executor {executor} --no-widget\nys = nap.map(range(6), seconds=unmapped(0.05))"

CHECK = """
from labloom.store import open_store
runs = %flow_runs swept --limit 100
kept = {{r.id: getattr(r.state, "value", r.state) for r in runs}}
assert len(kept) == {count}, kept
assert set(kept.values()) <= {{"Cancelled", "Completed"}}, kept
assert "Cancelled" in kept.values(), "no interrupt reached a run: the test proved nothing"
with open_store() as store:
    stored = {{r.id: r.state for r in store.list_runs(flow="swept", limit=100)}}
assert stored == kept, (stored, kept)
"""


def test_interrupting_flow_cells_at_varied_moments(tmp_path: Path) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok("%load_ext labloom\nfrom labloom import unmapped")
        k.ok(TASKS)
        k.ok(CELL.format(executor="threads"))  # modules imported, the store made
        count = 1
        for attempt in range(24):
            began = time.monotonic()
            delay = 0.02 * attempt  # 0 to 0.46 s: a cell takes about 0.1-0.4 s

            def due(began: float = began, delay: float = delay) -> bool:
                return time.monotonic() - began >= delay

            executor = ("local", "threads")[attempt % 2]
            status, messages = k.run_interrupted(CELL.format(executor=executor), when=due,
                                                 timeout=120)
            assert status == "ok" or "KeyboardInterrupt" in error_text(messages), (
                attempt, error_text(messages))
            count += 1
        k.ok(CHECK.format(count=count), timeout=120)
        k.ok(CELL.format(executor="local"), timeout=60)
        k.ok("assert ys == list(range(6)), ys")
