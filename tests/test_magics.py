"""The notebook magics, driven through a real IPython ``InteractiveShell``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from cli_helpers import wait_for
from labloom import Flow, FlowFailed, FlowRun, MagicArgsError, State, Task


def run(ip: InteractiveShell, cell: str) -> Any:
    result = ip.run_cell(cell)
    return result


def ok(ip: InteractiveShell, cell: str) -> None:
    result = ip.run_cell(cell)
    if not result.success:
        raise AssertionError(f"cell failed: {result.error_in_exec or result.error_before_exec!r}")


TASKS = """%%tasks
def double(x):
    print("doubling", x)
    return 2 * x

def add(a, b):
    return a + b

def boom(x):
    raise ValueError(f"bad value {x}")
"""


def test_magics_are_registered_with_help(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.magics
    assert {"tasks", "flow"} <= set(magics["cell"])
    assert "flow_runs" in magics["line"]
    doc = magics["cell"]["flow"].__doc__
    # magic_arguments writes the usage into the docstring, which is what %%flow? shows.
    assert "-p PARAM" in doc and "--background" in doc and "--no-widget" in doc
    assert "--retry-delay" in magics["cell"]["tasks"].__doc__


def test_tasks_turns_every_function_into_a_task_with_options(ip: InteractiveShell) -> None:
    ok(
        ip,
        """%%tasks --retries 2 --retry-delay 1,5 --tags db,io --cache --timeout 30
import labloom

def load(table):
    return table

@labloom.task(retries=7)
def explicit(x):
    return x

value = 3
""",
    )
    load = ip.user_ns["load"]
    assert isinstance(load, Task)
    assert load.retries == 2 and load.retry_delay == [1.0, 5.0]
    assert load.tags == frozenset({"db", "io"}) and load.cache and load.timeout == 30
    assert load("t") == "t"  # still the plain function outside a flow
    assert ip.user_ns["explicit"].retries == 7  # its own decorator wins
    assert ip.user_ns["value"] == 3


def test_flow_pushes_resolved_names_and_reruns_with_other_parameters(
    ip: InteractiveShell,
) -> None:
    ok(ip, TASKS)
    ok(ip, "grid = [1, 2, 3]")
    ok(
        ip,
        """%%flow sweep -p grid
doubled = double.map(grid)
total = add(doubled[0], doubled[2])
for i in range(2):
    last = i
""",
    )
    ns = ip.user_ns
    assert ns["doubled"] == [2, 4, 6] and ns["total"] == 8 and ns["last"] == 1
    sweep = ns["sweep"]
    assert isinstance(sweep, Flow) and sweep.parameters == ["grid"]
    again = sweep(grid=[10, 20, 30])
    assert again["doubled"] == [20, 40, 60] and again["total"] == 80
    assert ns["total"] == 8  # a plain call returns values; it does not touch the notebook


def test_several_parameters_and_options(ip: InteractiveShell) -> None:
    ok(ip, TASKS)
    ok(ip, "a = 2\nb = 5")
    ok(ip, "%%flow pair -p a,b --executor local\nc = add(double(a), b)")
    assert ip.user_ns["c"] == 9
    assert ip.user_ns["pair"].parameters == ["a", "b"]
    assert ip.user_ns["pair"](a=1, b=1) == {"c": 3}


def test_unknown_parameter_says_what_to_do(ip: InteractiveShell) -> None:
    result = run(ip, "%%flow f -p nowhere\nx = 1")
    assert isinstance(result.error_in_exec, NameError)  # as before it showed in one line
    assert "assign it in an earlier cell" in str(result.error_in_exec)


def test_an_executor_setting_that_names_none_is_one_line_naming_it(
    ip: InteractiveShell, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABLOOM_EXECUTOR", "threds")
    result = run(ip, "%%flow f\nx = 1")
    assert isinstance(result.error_in_exec, MagicArgsError)
    shown = capsys.readouterr().out
    assert shown == ("MagicArgsError: %%flow f: LABLOOM_EXECUTOR (or Labloom.executor): unknown "
                     "executor 'threds'; use one of local, threads, dask, a scheduler address "
                     "such as tcp://10.0.0.5:8786 or a cluster profile (--cluster)\n")
    monkeypatch.delenv("LABLOOM_EXECUTOR")
    monkeypatch.setenv("LABLOOM_ADDRESS", "scheduler:8786")
    run(ip, "%%flow f\nx = 1")
    assert capsys.readouterr().out == (
        "MagicArgsError: %%flow f: LABLOOM_ADDRESS (or Labloom.address) must look like "
        "tcp://host:8786, got 'scheduler:8786'\n")


def test_error_in_cell_points_at_the_cell_line(ip: InteractiveShell, capsys: Any) -> None:
    result = run(ip, "%%flow broken\nx = 1\ny = x + undefined_name\n")
    error = result.error_in_exec
    assert isinstance(error, NameError)
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None and tb.tb_lineno == 3  # line 1 is the %%flow line
    shown = capsys.readouterr().out
    assert "line 3" in shown and "undefined_name" in shown


@pytest.mark.parametrize(("cell", "said"), [
    ("%%flow f -p\ny = 1\n", "%%flow: argument -p/--param: expected at least one argument"),
    ("%%flow\ny = 1\n", "%%flow: the following arguments are required: name"),
    ("%%tasks --retries abc\ndef f(x):\n    return x\n",
     "%%tasks: argument --retries: invalid int value: 'abc'"),
    ("%%tasks --retry-on NoSuchError\ndef f(x):\n    return x\n",
     "%%tasks: --retry-on NoSuchError: no such name in the notebook"),
    ("def g():\n    pass\n%%flow g\ny = 1\n", "%%flow g: 'g' already holds the function g"),
    # session 47: each of these was a traceback through the magic, Flow() and the executors
    ("%%flow f -p undefined_name\ny = 1\n", "%%flow f: -p undefined_name names a notebook "
     "variable, but 'undefined_name' is not defined; assign it in an earlier cell"),
    ("%%flow f --executor nope\ny = 1\n", "%%flow f: --executor: unknown executor 'nope'; use "
     "one of local, threads, dask, a scheduler address such as tcp://10.0.0.5:8786 or a "
     "cluster profile (--cluster)"),
    ("%%flow f --address nope\ny = 1\n",
     "%%flow f: --address must look like tcp://host:8786, got 'nope'"),
    ("%%flow f --cluster nope\ny = 1\n", "%%flow f: no cluster profile named 'nope'"),
    ("%%flow f --retry-delay 3\ny = 1\n",
     "%%flow: --retry-delay without --retries does nothing; give --retries N too"),
])
def test_a_mistyped_option_shows_one_line_naming_it(
    ip: InteractiveShell, capsys: Any, cell: str, said: str
) -> None:
    # As IPython shows its own magics' mistakes: before session 46 each was a traceback
    # through IPython's run_cell_magic, labloom's grammar and argparse's internals.
    if cell.startswith("def g"):
        ok(ip, cell.split("%%flow")[0])
        cell = "%%flow" + cell.split("%%flow")[1]
    result = run(ip, cell)
    assert isinstance(result.error_in_exec, MagicArgsError)
    shown = capsys.readouterr().out
    assert shown.startswith(f"MagicArgsError: {said}") and shown.count("\n") == 1, shown


def test_syntax_error_points_at_the_cell_line(ip: InteractiveShell) -> None:
    result = run(ip, "%%flow broken\nx = 1\ny = (\n")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert result.error_in_exec.lineno == 3


@pytest.mark.parametrize(("taken", "what"), [
    ("%%tasks\ndef train(x):\n    return x + 1", "the task train"),
    ("def train(x):\n    return x + 1", "the function train"),
])
def test_a_flow_named_like_a_notebook_name_is_refused_before_it_replaces_it(
    ip: InteractiveShell, taken: str, what: str
) -> None:
    """`%%flow train` over the task train: the body's `train(1)` called the flow itself (a
    TypeError about positional arguments) and the notebook lost its task."""
    ok(ip, taken)
    before = ip.user_ns["train"]
    result = run(ip, "%%flow train\ny = train(1)\n")
    assert isinstance(result.error_in_exec, MagicArgsError)
    assert f"'train' already holds {what}" in str(result.error_in_exec)
    assert "such as %%flow train_flow" in str(result.error_in_exec)
    assert ip.user_ns["train"] is before
    ok(ip, "%%flow train_flow\ny = 1\n")
    ok(ip, "%%flow train_flow\ny = 2\n")  # the same flow cell, run again
    assert ip.user_ns["y"] == 2
    ok(ip, "%%flow y\ny = 3\n")  # a value is not refused: a cell may assign its own name
    ok(ip, "%%flow y\ny = 4\n")
    assert ip.user_ns["y"] == 4


def test_failed_task_raises_and_sets_the_names_that_resolved(ip: InteractiveShell) -> None:
    ok(ip, TASKS)
    result = run(ip, "%%flow partial\ngood = double(4)\nbad = boom(1)\n")
    error = result.error_in_exec
    assert isinstance(error, FlowFailed)
    assert "bad value 1" in str(error) and "not set" in str(error)
    assert isinstance(error.run, FlowRun) and error.run.state is State.FAILED
    assert ip.user_ns["good"] == 8
    assert "bad" not in ip.user_ns
    assert isinstance(ip.user_ns["partial"], Flow)


def test_background_returns_at_once_and_fills_names_when_done(ip: InteractiveShell) -> None:
    ok(ip, TASKS)
    ok(ip, "import threading\ngate = threading.Event()")
    ok(
        ip,
        """%%tasks
def wait_for_gate(x):
    gate.wait(300)  # opened once the cell is seen to have returned without it
    return x + 1
""",
    )
    result = ip.run_cell("%%flow later --background\nanswer = wait_for_gate(41)\n")
    assert result.success
    handle = result.result
    assert isinstance(handle, FlowRun)
    assert "answer" not in ip.user_ns
    ip.user_ns["gate"].set()
    assert handle.wait(60) is State.COMPLETED  # a guard
    wait_for(lambda: "answer" in ip.user_ns, 60, "the background run's names")
    assert ip.user_ns["answer"] == 42


def test_a_background_run_of_a_cell_run_again_since_leaves_the_newer_names(
    ip: InteractiveShell
) -> None:
    """Edited and run again while its first run still went on: when that older run ended, it
    put its stale value back into the notebook over the newer run's."""
    gate = threading.Event()
    ip.user_ns["gate"] = gate
    ok(ip, "%%tasks\ndef pick(x, wait):\n    if wait:\n        gate.wait(300)\n    return x\n")
    older = ip.run_cell("%%flow sweep --background\nbest = pick('old', True)\n").result
    newer = ip.run_cell("%%flow sweep --background\nbest = pick('new', False)\n").result
    # The older run is held (its gate opens below) until the newer one has put its names.
    assert newer.wait(60) is State.COMPLETED  # the waits here are guards
    wait_for(lambda: ip.user_ns.get("best") == "new", 60, "the newer run's names")
    gate.set()
    assert older.wait(60) is State.COMPLETED
    # The older run's names thread (started before its cell returned) is seen to end, so
    # what it would put back is in by now.
    for thread in threading.enumerate():
        if thread.name == f"labloom-names-{older.id}":
            thread.join(60)
            assert not thread.is_alive()
    assert ip.user_ns["best"] == "new"


def test_flow_runs_lists_this_kernels_runs(ip: InteractiveShell) -> None:
    ok(ip, TASKS)
    ok(ip, "%%flow listed\nv = double(1)")
    table = ip.run_line_magic("flow_runs", "listed")
    assert len(table) >= 1
    newest = next(iter(table))
    assert newest.flow_name == "listed" and newest.state is State.COMPLETED
    assert "listed" in repr(table) and "Completed" in table._repr_html_()
    assert "no flow runs" in repr(ip.run_line_magic("flow_runs", "never-ran"))


def test_flow_runs_all_shows_runs_from_other_processes_too(
    ip: InteractiveShell, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """The scheduler's and the CLI's runs live in the same store: ``--all`` shows them, the
    default is this kernel's runs, as documented. (A flow name no other test runs: this
    process's runs of a "nightly" from other test files are this kernel's too.)"""
    script = tmp_path / "nightly.py"
    script.write_text(
        "from labloom import flow, task\n"
        "@task\ndef one():\n    return 1\n"
        "@flow\ndef nightly_and_kernel():\n    return one()\n"
    )
    env = {**subprocess_env, "LABLOOM_HOME": os.environ["LABLOOM_HOME"]}  # the shell's store
    done = subprocess.run(
        [sys.executable, "-m", "labloom", "run", f"{script}:nightly_and_kernel"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ok(ip, TASKS)
    ok(ip, "%%flow nightly_and_kernel\nv = double(1)")
    mine = ip.run_line_magic("flow_runs", "nightly_and_kernel")
    assert [row[6] for row in mine.rows()] == ["notebook"]
    table = ip.run_line_magic("flow_runs", "nightly_and_kernel --all")
    origins = [row[6] for row in table.rows()]
    assert origins == ["notebook", "script"]
    assert [row[2] for row in table.rows()] == ["Completed", "Completed"]
    live, stored = list(table)
    assert live.state is State.COMPLETED and hasattr(live, "cancel")  # this kernel's handle
    assert stored.origin == "script" and stored.counts == {"Completed": 1}


def test_config_and_environment_choose_the_executor(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(ip, "%config Labloom.executor = 'local'")
    ok(ip, "%%flow where\nx = 1")
    assert ip.user_ns["where"].executor == "local"
    monkeypatch.setenv("LABLOOM_EXECUTOR", "threads")
    ok(ip, "%%flow where\nx = 1")
    assert ip.user_ns["where"].executor == "threads"  # the environment wins over %config
    ok(ip, "%%flow where --executor local\nx = 1")
    assert ip.user_ns["where"].executor == "local"  # and the option wins over both

def test_config_rejects_a_bad_address(ip: InteractiveShell, caplog: Any) -> None:
    from labloom.notebook.settings import settings

    ok(ip, "%config Labloom.address = 'not-an-address'")  # %config logs what it rejects
    assert "must look like tcp://host:8786" in caplog.text
    assert settings(ip).address == ""
    ok(ip, "%config Labloom.address = 'tcp://127.0.0.1:8786'")
    assert settings(ip).effective("address") == "tcp://127.0.0.1:8786"
    ok(ip, "%config Labloom.address = ''")


def test_interrupt_cancels_the_run(ip: InteractiveShell) -> None:
    started, release = threading.Event(), threading.Event()
    ip.user_ns.update(started=started, release=release)
    ok(
        ip,
        """%%tasks
def slow(x):
    started.set()
    release.wait(30)  # still running when the interrupt comes: the test releases it after
    return x
""",
    )

    def interrupt() -> None:  # as the kernel's interrupt button does, once a task runs
        if started.wait(30):
            os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        result = run(ip, "%%flow stoppable\nresult = slow.map(range(3))\n")
    finally:
        release.set()
        interrupter.join(30)
    assert started.is_set(), "no task of the run started"
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    table = ip.run_line_magic("flow_runs", "stoppable")
    assert next(iter(table)).state is State.CANCELLED


def test_an_interrupt_while_the_widget_shows_cancels_the_run(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first widget of a kernel takes a second or more to import: an interrupt then comes
    before the cell waits for its run, and must still cancel it, not leave it running unseen."""
    from labloom.notebook import magics

    release = threading.Event()
    ip.user_ns.update(release=release)
    ok(ip, "%%tasks\ndef slow(x):\n    release.wait(30)\n    return x\n")

    def interrupted_while_showing(run: FlowRun) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(magics, "_show_widget", interrupted_while_showing)
    ok(ip, "%config Labloom.widget = True")
    try:
        result = run(ip, "%%flow early\nout = slow(1)\n")
    finally:
        release.set()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    cell_run = next(iter(ip.run_line_magic("flow_runs", "early")))
    assert cell_run.wait(timeout=30) is State.CANCELLED


def test_an_interrupt_on_the_local_executor_records_the_run_cancelled_at_once(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local executor runs a call in any thread that waits for the run: in the run's own
    one (it takes the first call while the cell shows its widget) no interrupt reaches it. The
    cell then waited 10 s, and left the run Running until the call returned."""
    from labloom.notebook import magics

    started, release = threading.Event(), threading.Event()
    ip.user_ns.update(started=started, release=release)
    ok(ip, "%%tasks\ndef slow(x):\n    started.set()\n    release.wait(60)\n    return x\n")
    # As a kernel's first widget takes a while to import: the run's thread takes the call.
    monkeypatch.setattr(magics, "_show_widget", lambda run: time.sleep(0.5))
    ok(ip, "%config Labloom.widget = True")

    def interrupt() -> None:
        if started.wait(30):
            os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        result = run(ip, "%%flow local_stop --executor local\nout = slow(1)\n")
        cell_run = next(iter(ip.run_line_magic("flow_runs", "local_stop")))
        state_while_the_call_runs = cell_run.state
    finally:
        release.set()
        interrupter.join(30)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert state_while_the_call_runs is State.CANCELLED
    assert [tr.state for tr in cell_run.tasks] == [State.CANCELLED]


def test_a_scheduler_address_nothing_listens_on_is_refused_saying_so(
    ip: InteractiveShell, capsys: Any
) -> None:
    """A mistyped port: distributed retried the refused connection for 30 s, then showed a long
    traceback of its internals ("Timed out trying to connect"); until session 47, a traceback
    through the magic, the engine and the executor (90 lines) above the one that says it."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ok(ip, "%%tasks\ndef t(x):\n    return x\n")
    result = run(ip, f"%%flow remote --address tcp://127.0.0.1:{port}\ny = t(1)\n")
    assert isinstance(result.error_in_exec, ConnectionError)
    assert (f"cannot reach tcp://127.0.0.1:{port} (a Dask scheduler): the connection was "
            "refused") in str(result.error_in_exec)
    assert "check the address (DaskExecutor(address), --address" in str(result.error_in_exec)
    shown = capsys.readouterr().out
    assert shown.startswith(f"ConnectionError: cannot reach tcp://127.0.0.1:{port}"), shown
    assert shown.count("\n") == 1, shown


class Weights:
    """A result that can be referenced weakly (a model's weights, say)."""


def test_a_run_let_go_in_a_kernel_frees_its_results(ip: InteractiveShell) -> None:
    """%flow_runs remembers this kernel's runs weakly: a `flow.run()` the user let go of frees
    its results (on Dask, the cluster's memory); the latest run of each %%flow cell stays."""
    import gc
    import weakref

    from labloom import flow, task

    ok(ip, TASKS)
    ok(ip, "%%flow kept\nv = double(1)")  # %flow_runs now records this kernel's runs

    @task
    def fit(i: int) -> Weights:
        return Weights()

    @flow
    def training() -> list[Weights]:
        return fit.map(range(3))  # type: ignore[return-value]

    gc.disable()  # as if the collector had not run yet
    try:
        run = training.run(executor="threads")
        results = [weakref.ref(w) for w in run.result()]
        del run
        assert [r() for r in results] == [None, None, None]
    finally:
        gc.enable()
    assert [entry.flow_name for entry in ip.run_line_magic("flow_runs", "kept")] == ["kept"]
    assert isinstance(next(iter(ip.run_line_magic("flow_runs", "kept"))), FlowRun)


def test_a_past_run_from_flow_runs_draws_its_lanes_in_a_widget(ip: InteractiveShell) -> None:
    """A widget made for a past run that %flow_runs hands back (after the run ended) is
    replayed from the run's own account: each task run sits in the lane (thread) it ran in,
    not in the "unknown" lane of task runs whose lane was never recorded."""
    from labloom.dag.timeline import UNKNOWN_LANE
    from labloom.notebook.widget.view import RunView

    ok(ip, TASKS)
    ok(ip, "%%flow laned\nv = double.map(range(6))")
    [past] = list(ip.run_line_magic("flow_runs", "laned"))
    assert isinstance(past, FlowRun) and past.state is State.COMPLETED
    ran_in = {tr.worker for tr in past.tasks}
    assert ran_in and all(lane.startswith("labloom-task_") for lane in ran_in), ran_in
    sent: list[dict[str, Any]] = []
    view = RunView(past, lambda payload: None, sent.append)
    view.start()
    try:
        view.handle({"event": "timeline"})
    finally:
        view.close()
    answer = next(m for m in sent if m.get("event") == "timeline")
    assert answer["total"] == 6 and UNKNOWN_LANE not in answer["lanes"], answer["lanes"]
    assert set(answer["lanes"]) == ran_in
