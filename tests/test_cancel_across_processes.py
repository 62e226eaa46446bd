"""Cancel from another process (what the Flows panel does): the request goes through the store,
and the process that owns the run cancels it within about a second, whoever that is: a
`labloom run` in a terminal, a run started by `labloom serve`, a Jupyter kernel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom, start_labloom, stop, wait_for, write
from labloom.store import open_store
from labloom.store.cancel import NotCancellable, request_cancel
from labloom.store.home import connect

SLOW_FLOW = """
import time
from labloom import flow, task

@task
def nap(i):
    print(f"nap {i}")
    time.sleep(0.3)
    return i

@flow(executor="threads")
def sleepy(n: int = 400):
    return nap.map(range(n))
"""


def running_run(home: Path) -> Any:
    with open_store(home / "labloom.db") as store:
        runs = store.list_runs(state="Running")
        if runs and runs[0].counts.get("Completed"):
            return runs[0]  # under way: some task runs finished already
    return None


def stored(home: Path, run_id: str) -> Any:
    with open_store(home / "labloom.db") as store:
        return store.get_run(run_id)


def test_a_cli_run_is_cancelled_and_its_process_exits(tmp_path: Path) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    proc = start_labloom(tmp_path, "run", "slow.py:sleepy", LABLOOM_PROGRESS="0")
    try:
        run = wait_for(lambda: running_run(tmp_path), 60, "the run to start")
        asked = time.time()
        assert request_cancel(run.id, "cancelled from the Flows panel",
                              tmp_path / "labloom.db") == "Running"
        code = proc.wait(timeout=60)
        _out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert code == 1 and "Traceback" not in err, err
    record = stored(tmp_path, run.id)
    assert record.state == "Cancelled" and record.message == "cancelled from the Flows panel"
    # Ended after it was asked, and long before its 400 naps could: some never ran (a
    # guard of a minute above, not a bound on how soon).
    assert record.ended is not None and record.ended >= asked
    assert record.counts.get("Cancelled") and record.counts.get("Completed")
    with pytest.raises(NotCancellable, match=r"already ended \(Cancelled\)"):
        request_cancel(run.id, path=tmp_path / "labloom.db")
    with pytest.raises(KeyError):
        request_cancel("0123456789ab", path=tmp_path / "labloom.db")


def test_a_run_started_by_serve_is_cancelled(tmp_path: Path) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    added = labloom(tmp_path, "schedule", "add", "slow.py:sleepy", "--every", "2s",
                    "--name", "slow")
    assert added.returncode == 0, added.stderr
    serve = start_labloom(tmp_path, "serve", "--tick", "0.1", "--grace", "1")
    try:
        run = wait_for(lambda: running_run(tmp_path), 60, "the scheduled run to start")
        assert run.origin == "schedule"
        request_cancel(run.id, "cancelled from the Flows panel", tmp_path / "labloom.db")
        wait_for(lambda: stored(tmp_path, run.id).state == "Cancelled", 30, "Cancelled")
        # The scheduler saw its child exit (the slot is no longer running) and goes on.
        wait_for(lambda: _slot_status(tmp_path, run.id) not in ("running", None), 30,
                 "the slot to end")
        assert serve.poll() is None
    finally:
        serve.terminate()
        stop(serve, timeout=30)


def _slot_status(home: Path, run_id: str) -> str | None:
    conn = connect(home / "labloom.db")
    try:
        row = conn.execute(
            "SELECT status FROM schedule_slots WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def test_a_kernel_run_is_cancelled_and_the_kernel_goes_on(tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    write(tmp_path / "slow.py", SLOW_FLOW)
    env = cli_env(tmp_path, LABLOOM_PROGRESS="0", JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
                  IPYTHONDIR=str(tmp_path / "ipython"))
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        reply = kc.execute_interactive(
            "import sys; sys.path.insert(0, '.')\n"
            "from slow import sleepy\n"
            "run = sleepy.run(background=True)\n",
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        run = wait_for(lambda: running_run(tmp_path), 60, "the kernel's run to start")
        request_cancel(run.id, "cancelled from the Flows panel", tmp_path / "labloom.db")
        wait_for(lambda: stored(tmp_path, run.id).state == "Cancelled", 30, "Cancelled")
        outputs: list[str] = []
        reply = kc.execute_interactive(
            "run.wait(30); print(run.state.value, run.message)",
            timeout=60,
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok"
        assert "Cancelled cancelled from the Flows panel" in "".join(outputs)
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
