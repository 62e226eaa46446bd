"""Interrupting a %%flow cell in a real kernel, as JupyterLab's Interrupt button does (SIGINT to
the kernel's process group): the cell returns, the run is recorded Cancelled, the next cell's
flow runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_helpers import error_text, kernel

SLOW_AND_QUICK = """%%tasks
import pathlib, time

def slow(started, release):
    pathlib.Path(started).touch()
    deadline = time.monotonic() + 60
    while not pathlib.Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return 1

def double(x):
    return 2 * x
"""


def test_interrupting_a_dask_cell_leaves_the_kernels_cluster_working(tmp_path: Path) -> None:
    """The embedded LocalCluster's worker processes share the kernel's process group: the
    interrupt must not kill them, or every later Dask cell of the kernel hangs."""
    pytest.importorskip("distributed")
    started, release = tmp_path / "started", tmp_path / "release"
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok("%load_ext labloom")
        k.ok(SLOW_AND_QUICK)
        # The cluster started and the widget's modules imported: the interrupt comes in the wait.
        k.ok("%%flow warm --executor dask\nys = double.map(range(2))", timeout=120)
        status, messages = k.run_interrupted(
            f"%%flow stopped --executor dask\none = slow({str(started)!r}, {str(release)!r})",
            when=started.exists, timeout=120,
        )
        release.touch()  # the cancelled call goes on in its worker thread: let it end
        assert started.exists(), error_text(messages)
        assert status == "error" and "KeyboardInterrupt" in error_text(messages)
        k.ok("runs = %flow_runs stopped")
        k.ok("assert next(iter(runs)).state.value == 'Cancelled', runs")
        # Before the fix the workers died of the interrupt and this cell never ended.
        k.ok("%%flow quick --executor dask\nys = double.map(range(4))", timeout=60)
        k.ok("assert ys == [0, 2, 4, 6], ys")
