# mypy: disable-error-code="untyped-decorator,no-untyped-call,union-attr"
# IPython's magic decorators are untyped and Magics.shell is Optional; the shell is set here.
"""``%load_ext labloom``: the ``%%tasks``, ``%%flow`` and ``%flow_runs`` magics.

Thin over the public API: ``%%tasks`` is ``@task(...)`` on every function a cell defines,
``%%flow`` builds a ``Flow`` from the cell (see ``cellflow``) and runs it with the live DAG.
"""

from __future__ import annotations

import ast
import builtins
import threading
import types
from collections.abc import Sequence
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.at_exit import end_interrupted
from ..core.errors import ClusterConfigError, FlowFailed, MagicArgsError, RunCancelledError
from ..core.observers import add_run_observer
from ..core.states import State
from ..core.tasks import Task, task
from ..export.magic_grammar import flow_help, parse_flow_line, parse_tasks_line, tasks_help
from . import history
from .cellflow import cell_flow, resolved_names
from .late_interrupts import ignore_late_interrupts
from .print_tail import PrintTail
from .settings import ENV, settings
from .tracebacks import in_one_line, show_from_cells


def _in_cell(exc: BaseException, filename: str) -> BaseException:
    """``exc`` with its traceback starting at the first frame of the cell's own code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return exc.with_traceback(tb) if tb is not None else exc


@magics_class
class LabloomMagics(Magics):
    """labloom's notebook magics."""

    def _compile_target(self, magic: str, line: str, cell: str) -> tuple[str, str]:
        """The cell as IPython would transform it, and a filename that maps tracebacks to the
        cell as shown (its first line is the ``%%magic`` line)."""
        shown = f"%%{magic} {line}\n{cell}"
        # The running cell's number (In[n]): IPython 9.16 counts a cell before running it,
        # older IPython after; the input history holds the running cell in both.
        typed = self.shell.history_manager.input_hist_raw
        number = len(typed) - 1
        filename = self.shell.compile.cache(shown, number)
        # A traceback shows the cell's own lines from IPython's cache, which holds what it ran
        # (a ``run_cell_magic(...)`` call); in a kernel, the cell as typed replaces that.
        if typed and typed[-1].lstrip().startswith(f"%%{magic}"):
            self.shell.compile.cache(typed[-1], number, raw_code=typed[-1])
        source = self.shell.transform_cell(cell)
        return source, filename

    @cell_magic
    def tasks(self, line: str, cell: str) -> None:
        """Run the cell, then make every top-level function it defines a task.

        Example::

            %%tasks --retries 2 --tags db
            def load(table): ...
            def clean(rows): ...
        """
        __tracebackhide__ = True
        parsed = parse_tasks_line(line)
        options = parsed.task_kwargs()
        source, filename = self._compile_target("tasks", line, cell)
        tree = ast.parse("\n" + source, filename=filename)
        defined = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        # The shell's compiler keeps the cell's __future__ flags; IPython 9 types its source
        # as str only, but it compiles an AST like the builtin does.
        compiler: Any = self.shell.compile
        code = compiler(tree, filename, "exec")
        user_ns = self.shell.user_ns
        exec(code, user_ns)
        if parsed.retry_on:  # looked up after the cell ran: it may define or import them
            options["retry_on"] = tuple(_exception_class(n, user_ns) for n in parsed.retry_on)
        for name in defined:
            fn = user_ns.get(name)
            if isinstance(fn, Task) or not callable(fn):
                continue  # already a task (its own decorator wins), or rebound to a value
            user_ns[name] = task(fn, **options)

    @cell_magic
    def flow(self, line: str, cell: str) -> Any:
        """Run the cell body as a flow, showing the live DAG.

        Every name the cell assigns holds its resolved value afterwards, and NAME holds the
        Flow, so ``NAME(grid=other)`` runs it again and returns those names as a dict.

        Example::

            %%flow sweep -p grid
            scores = train.map(grid)
            best = pick_best(scores)
        """
        __tracebackhide__ = True
        args = parse_flow_line(line)
        name = args.name
        user_ns = self.shell.user_ns
        _refuse_a_taken_name(name, user_ns)
        params: dict[str, Any] = {}
        for param in args.params:
            if param not in user_ns:
                raise _UndefinedParameter(
                    f"[labloom] %%flow {name}: -p {param} names a notebook variable, but "
                    f"{param!r} is not defined; assign it in an earlier cell"
                )
            params[param] = user_ns[param]
        config = settings(self.shell)
        executor = _executor_choice(name, args, config)
        source, filename = self._compile_target("flow", line, cell)
        try:
            flow, _names = cell_flow(
                name, source, params, user_ns, self.shell.compile, filename, executor,
                **args.flow_kwargs(),
            )
        except ClusterConfigError as exc:  # Flow() resolved the profile: it is not usable
            raise _ClusterProfileMistake(
                f"[labloom] %%flow {name}: {str(exc).removeprefix('[labloom] ')}") from None
        user_ns[name] = flow
        showing = args.widget and config.effective("widget")
        tails: list[PrintTail] = []
        started_runs: list[Any] = []

        def on_start(started: Any) -> None:
            if started.flow is flow:
                started_runs.append(started)
                if showing:  # made as the run starts, before any task prints: under the DAG
                    tails.append(PrintTail(started))

        stop_watching = add_run_observer(on_start)
        try:
            run = flow.run(background=True, origin="notebook")
        except KeyboardInterrupt:
            for started in started_runs:  # while the run's thread started: its call may run
                end_interrupted(started)
            raise
        except ConnectionError as exc:
            if str(exc).startswith("[labloom] "):  # a scheduler nothing answers at, and the fix
                raise in_one_line(exc) from None
            raise
        finally:
            stop_watching()
        widget = None
        try:
            history.keep_cell_run(run)
            if showing:
                widget = _show_widget(run)
                for tail in tails:
                    tail.show()
            if args.background:
                name_thread = f"labloom-names-{run.id}"
                threading.Thread(
                    target=_publish_later, args=(run, user_ns), name=name_thread, daemon=True
                ).start()
                return run
            run.wait()
        except KeyboardInterrupt:
            # FlowRun.wait cancels the run it waits for; an interrupt before that (the first
            # widget of a kernel takes a while to import) must too, or the run goes on unseen.
            try:
                end_interrupted(run)
            finally:
                user_ns.update(resolved_names(run)[0])
                _final_frame(widget, tails)
            raise
        _final_frame(widget, tails)
        try:
            _publish(run, user_ns, filename)
        except Exception as exc:
            # Shown as IPython shows a cell's error: the cells' frames, not the machinery's.
            raise show_from_cells(exc, self.shell) from exc.__cause__
        return None

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Only the runs of this flow.")
    @argument("--limit", type=int, default=50, help="At most this many runs (default 50).")
    @argument("--all", action="store_true", help="Every run of the store, not only this "
              "kernel's (scripts, schedules, other kernels).")
    @line_magic
    def flow_runs(self, line: str) -> history.RunTable:
        """The runs started in this kernel, newest first; ``--all``: every run of the store."""
        args = parse_argstring(self.flow_runs, line)
        entries = history.history(args.name, args.limit, everywhere=args.all)
        return history.RunTable(entries, args.name)


class _UndefinedParameter(MagicArgsError, NameError):
    """``-p NAME`` for a variable the notebook lacks: a NameError as it always was, shown in
    one line as the magic's other mistakes are (not a traceback through the magic)."""


class _ClusterProfileMistake(MagicArgsError, ClusterConfigError):
    """``--cluster NAME`` for a profile that is missing or unusable: a ClusterConfigError as it
    always was, shown in one line."""


def _executor_choice(name: str, args: Any, config: Any) -> str | None:
    """The cell's executor: ``--cluster``, ``--executor``, ``--address``, else the settings;
    a name that is no executor is refused now, naming where it came from."""
    from ..executors import PREFIX, unknown_executor

    if args.cluster is not None:
        # Resolved per run (a cluster each), checked now: Flow() resolves the profile.
        return f"{PREFIX}{args.cluster}"
    address = args.address or config.effective("address") or None
    executor = args.executor or ("dask" if address else config.effective("executor"))
    if address and executor == "dask":
        if "://" not in str(address):  # "nope" was taken for an executor's name
            where = "--address" if args.address else f"{ENV['address']} (or Labloom.address)"
            raise MagicArgsError(f"[labloom] %%flow {name}: {where} must look like "
                                 f"tcp://host:8786, got {address!r}")
        return str(address)  # an address is itself an executor choice
    problem = unknown_executor(executor) if isinstance(executor, str) else None
    if problem:
        where = "--executor" if args.executor else f"{ENV['executor']} (or Labloom.executor)"
        raise MagicArgsError(f"[labloom] %%flow {name}: {where}: {problem}")
    return executor


def _exception_class(name: str, user_ns: dict[str, Any]) -> type[BaseException]:
    """The class a ``%%tasks --retry-on`` name means in the notebook (``requests.Timeout``
    through the notebook's ``requests``), or an error naming the fix."""
    head, *rest = name.split(".")
    found: Any = user_ns.get(head, getattr(builtins, head, _MISSING))
    for part in rest:
        found = getattr(found, part, _MISSING)
    if found is _MISSING:
        raise MagicArgsError(
            f"%%tasks: --retry-on {name}: no such name in the notebook; import it (or define "
            "it) in this cell or one run before"
        )
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise MagicArgsError(
            f"%%tasks: --retry-on {name} is {type(found).__name__} {found!r}, not an exception "
            "class (ConnectionError, requests.Timeout)"
        )
    return found


_MISSING = object()


def _refuse_a_taken_name(name: str, user_ns: dict[str, Any]) -> None:
    """The cell binds NAME to its flow: refuse to replace a task or function of the notebook
    (naming the flow after its main task is natural, and the body's ``train(...)`` then called
    the flow itself). An exported notebook refuses the same clash."""
    taken = user_ns.get(name)
    if isinstance(taken, Task):
        what = f"the task {name}"
    elif isinstance(taken, types.FunctionType):
        what = f"the function {name}"
    else:
        # New, this flow cell run again, or a value (one the cell itself assigned, say).
        return
    raise MagicArgsError(
        f"[labloom] %%flow {name}: {name!r} already holds {what} in the notebook, and the cell "
        f"would rebind it to the flow; name the flow otherwise, such as %%flow {name}_flow"
    )


def _show_widget(run: Any) -> Any:
    from .comms import route_to_subshell
    from .widget import widget_for

    widget = widget_for(run)
    route_to_subshell(widget)
    widget.show()
    return widget


def _final_frame(widget: Any, tails: Sequence[PrintTail] = ()) -> None:
    """Send the run's last frame (and the saved output's final summary) before the cell ends,
    not up to a throttle interval later, when nbclient or a reader may already have moved on."""
    if widget is not None:
        widget.flush()
    for tail in tails:
        tail.flush()


def _publish(run: Any, user_ns: dict[str, Any], filename: str) -> None:
    """Put the names the cell assigned into the notebook; raise what went wrong, if anything."""
    __tracebackhide__ = True
    if _publish_completed(run, user_ns):
        return
    values, missing = resolved_names(run)
    user_ns.update(values)
    try:
        run.result()
    except FlowFailed as exc:
        raise FlowFailed(
            f"[labloom] {exc}" + _names_note(values, missing), run=exc.run, failed=exc.failed
        ) from exc.__cause__  # the first failed task's own error, shown first
    except RunCancelledError as exc:
        note = _names_note(values, missing)
        raise RunCancelledError(f"[labloom] {exc}: {run.message}{note}") from None
    except Exception as exc:
        raise _in_cell(exc, filename) from None
    if run.state is not State.COMPLETED:
        # (as ``values.failures``: a child that left its map is history, not this run's failure)
        failed = [(tr.name, tr.message) for tr in run.tasks
                  if tr.state is State.FAILED and not tr.left_map]
        raise FlowFailed(
            f"[labloom] flow {run.flow_name!r} (run {run.id}) ended {run.state}: {run.message}"
            + _names_note(values, missing),
            run=run,
            failed=failed,
        )


def _names_note(values: dict[str, Any], missing: list[str]) -> str:
    if not missing:
        return ""
    kept = ", ".join(values) or "none"
    return f". Names set: {kept}; not set (they need task runs that did not succeed): " + ", ".join(
        missing
    )


def _publish_completed(run: Any, user_ns: dict[str, Any]) -> bool:
    """A completed run's names go into the notebook as the cell assigned them."""
    if run.state is not State.COMPLETED:
        return False
    try:
        values = run.result()
    except Exception:
        return False
    if not isinstance(values, dict):
        return False
    resolved_names(run)  # drop the unresolved copy
    user_ns.update(values)
    return True


def _publish_later(run: Any, user_ns: dict[str, Any]) -> None:
    run.wait()
    if not history.is_latest_cell_run(run):
        return  # the cell ran again meanwhile: its names are the newer run's, not stale ones
    if _publish_completed(run, user_ns):
        return
    user_ns.update(resolved_names(run)[0])


# ``%%tasks?`` and ``%%flow?`` show the grammar's own usage (the one both magics parse with).
LabloomMagics.tasks.__doc__ = f"{LabloomMagics.tasks.__doc__}\n{tasks_help()}"
LabloomMagics.flow.__doc__ = f"{LabloomMagics.flow.__doc__}\n{flow_help()}"


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(LabloomMagics)
    settings(ipython)
    history.start_recording()
    ignore_late_interrupts(ipython)
