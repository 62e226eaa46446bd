"""`labloom cancel RUN...` of a run deleted (`labloom delete`, the Flows panel) after the
command looked it up: before its cancel request, and while it waited for the runs to end.
Before, either raised an unhandled error (a KeyError, an IndexError: a traceback); now it is
said of that run, and the others are cancelled on."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import labloom, wait_for, write
from cut_runs import states_of, three_held_runs
from held_cli import held_at

QUICK = """
from labloom import flow, task

@task
def one() -> int:
    return 1

@flow(executor="local")
def once() -> int:
    return one()
"""


def _deleted(home: Path, run_id: str) -> None:
    gone = labloom(home, "delete", run_id)
    assert gone.returncode == 0 and "deleted 1 run(s)" in gone.stdout, gone


def test_a_run_deleted_before_its_cancel_request_is_said_and_the_others_cancelled(
    labloom_home: Path, tmp_path: Path, store_backend: str,
) -> None:
    write(labloom_home / "quick.py", QUICK)
    ran = labloom(labloom_home, "run", "quick.py:once")
    assert ran.returncode == 0, ran.stderr
    [ended] = [r["id"] for r in json.loads(labloom(labloom_home, "runs", "--json").stdout)]
    stop = tmp_path / "stop"
    with three_held_runs(labloom_home, stop):
        listed = json.loads(labloom(labloom_home, "runs", "--json").stdout)
        going = sorted(r["id"] for r in listed if r["state"] == "Running")
        with held_at(labloom_home, "store/cancel.py", "request_cancel", "cancel", ended,
                     going[0], "--wait", "60") as (proc, gate):
            _deleted(labloom_home, ended)  # looked up by the command, not yet asked
            gate.touch()
            out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err  # before: KeyError
        assert out.splitlines() == [f"run {ended}: not cancelled: it was deleted meanwhile",
                                    f"run {going[0]}: Cancelled"], (out, err)
        assert proc.returncode == 1, (out, err)  # as a run that had ended: not cancelled


def test_a_run_deleted_while_the_command_waits_for_its_end_is_said(
    labloom_home: Path, tmp_path: Path, store_backend: str,
) -> None:
    labloom_home.mkdir()  # the commands' folder (a PostgreSQL store makes no file there)
    stop = tmp_path / "stop"
    with three_held_runs(labloom_home, stop):
        listed = json.loads(labloom(labloom_home, "runs", "--json").stdout)
        going = sorted(r["id"] for r in listed if r["state"] == "Running")
        with held_at(labloom_home, "cli/cancelling.py", "_wait", "cancel", going[1],
                     "--wait", "60") as (proc, gate):
            stop.touch()  # its task returns: it ends (Completed, or Cancelled if asked first)
            wait_for(lambda: states_of(labloom_home, [going[1]])[0] in ("Completed",
                                                                         "Cancelled"),
                     60, "the run's end")
            _deleted(labloom_home, going[1])
            gate.touch()
            out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err  # before: IndexError
        assert out.splitlines() == [
            f"run {going[1]}: cancel requested; it ended and was deleted meanwhile"], (out, err)
        assert proc.returncode == 0, (out, err)
