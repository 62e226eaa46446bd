"""`labloom runs`, `show`, `logs`, `retry`: the run history, as tables for people and
``--json`` for programs."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from ..core.states import RUN_STATES, shown_traceback
from ..core.terminal_text import printable
from ..store import open_store
from ..store.reader import RunStore
from .options import count
from .terminal import echo, log_line
from .terminal import shown_time as _when


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    runs = subparsers.add_parser("runs", help="list flow runs, newest first")
    runs.add_argument("--flow", help="only runs of this flow")
    runs.add_argument("--limit", type=count("--limit"), default=20, metavar="N",
                      help="at most N runs (default 20)")
    runs.add_argument("--user", help="only runs of this user (`me`: yours)")
    runs.add_argument("--host", help="only runs started on this host (`here`: this one)")
    runs.add_argument("--state", type=_run_state,
                      help="only runs in this state: " + ", ".join(RUN_STATES).lower())
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=_runs)

    show = subparsers.add_parser("show", help="a run and its task runs with their states")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON (with state histories)")
    show.set_defaults(handler=_show)

    logs = subparsers.add_parser("logs", help="log lines of a run or of one task")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("--task", help="a task name, name[i] or task run id")
    logs.add_argument("--json", action="store_true",
                      help="print JSON (with --follow: one JSON object a line)")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="print lines as they are written, until the run ends")
    logs.set_defaults(handler=_logs)

    retry = subparsers.add_parser(
        "retry", help="rerun a run's failed part, reusing the results of what completed"
    )
    retry.add_argument("run_id", metavar="RUN_ID")
    retry.add_argument("--executor", help="local, threads, dask or a scheduler address")
    retry.set_defaults(handler=_retry)


def _unknown(run_id: str) -> Exception:
    from . import CLIError

    return CLIError(f"no run {run_id!r} in the store; `labloom runs` lists the recorded runs")


_AMBIGUOUS_SHOWN = 10


def _find(store: RunStore, run_id: str, parameters: bool = False) -> Any:
    """The run ``run_id`` names (its id, or a prefix of one id), without its task runs counted
    (a read of every task run) and without its parameters unless asked: what each command
    needs of it (``labloom show`` counts the task runs it reads anyway)."""
    matches = store.matching_runs(run_id, limit=_AMBIGUOUS_SHOWN + 1, parameters=False)
    if len(matches) == 1:  # the whole id, or a prefix of one only
        return store.matching_runs(matches[0].id, limit=1)[0] if parameters else matches[0]
    if len(matches) > 1:
        from . import CLIError

        named = ", ".join(
            f"{run.id} ({run.flow_name}, {_when(run.started or run.created)})"
            for run in matches[:_AMBIGUOUS_SHOWN]
        )
        more = " and more" if len(matches) > _AMBIGUOUS_SHOWN else ""
        raise CLIError(f"run id {run_id!r} is ambiguous: it starts the ids of {named}{more}; "
                       "give more of the id")
    raise _unknown(run_id)


def _run_state(text: str) -> str:
    """``failed`` or ``Failed``: the state as the store spells it."""
    from . import CLIError

    for state in RUN_STATES:
        if text.strip().lower() == state.lower():
            return state
    raise CLIError(f"--state must be one of {', '.join(RUN_STATES).lower()}, got {text!r}")


def _runs(args: argparse.Namespace) -> int:
    from ..store.home import host_name, user_name

    user = user_name() if args.user == "me" else args.user
    host = host_name() if args.host == "here" else args.host
    with open_store() as store:
        runs = store.list_runs(flow=args.flow, limit=args.limit, user=user, host=host,
                               state=args.state, parameters=args.json)
    if args.json:
        print(json.dumps([run.to_json() for run in runs], indent=1))
        return 0
    if not runs:
        echo("no runs recorded" + (f" for flow {args.flow!r}" if args.flow else "")
             + (f" in state {args.state}" if args.state else ""))
        return 0
    rows = [
        [run.id, run.flow_name, run.state, _when(run.started), _seconds(run.duration),
         _counts(run.counts), run.origin or "", run.user or "", run.host or ""]
        for run in runs
    ]
    _table(["RUN", "FLOW", "STATE", "STARTED", "DURATION", "TASK RUNS", "ORIGIN", "USER", "HOST"],
           rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..schedule import run_alerts

    with open_store() as store:
        run = _find(store, args.run_id, parameters=True)
        tasks = store.task_runs(run.id, history=args.json)
        retries = store.retries(run.id)
        alert = run_alerts.of_run(store.conn, run.id)
        notes = store.notes(run.id)
    # Counted from the task runs shown, not read again (``get_run``: every task run twice).
    run.counts.update(sorted(Counter(t.state for t in tasks if not t.left_map).items()))
    if args.json:
        print(json.dumps({**run.to_json(), "retried_by": [rid for rid, _ in retries],
                          "alert": alert, "notes": notes,
                          "task_runs": [t.to_json() for t in tasks]}, indent=1))
        return 0
    # Under @flow(retries=N): which attempt it ended at (its message says why they failed).
    attempt = (f", attempt {run.metadata['attempt']} of {run.metadata['attempts_allowed']}"
               if "attempts_allowed" in run.metadata else "")
    echo(f"run {run.id} of flow {run.flow_name!r}: {run.state}{attempt}")
    if run.message:
        echo(f"  {run.message}")
    # A Crashed run's end is its last sign of life (its writer's beat), not when it stopped.
    took = (f"last seen alive {_seconds(run.duration)} later" if run.state == "Crashed"
            else f"took {_seconds(run.duration)}")
    echo(f"  started {_when(run.started)}, {took}, on {run.host} ({run.executor}, {run.origin})")
    shown = run.shown_parameters()
    if shown:
        echo(f"  parameters: {json.dumps(shown)}")
    if run.retry_of:
        echo(f"  retry of run {run.retry_of}")
    for rid, state in retries:  # a failed run already retried is not retried again unseen
        echo(f"  retried by run {rid} ({state})")
    if run.metadata.get("cluster_class"):
        echo(f"  {_cluster(run.metadata)}")
    if alert is not None:
        echo(f"  failure alert: {_alert_text(alert)}")
    for note in notes:  # what of the run is not in the store, and why
        echo(f"  {note}")
    echo()
    _table(["TASK RUN", "STATE", "ATTEMPTS", "DURATION", "MESSAGE"], [
        [t.name, t.state, str(t.attempts), _seconds(t.duration), _short(t.message)]
        for t in tasks if not t.left_map
    ])
    left = [t for t in tasks if t.left_map]
    if left:  # no longer their map's children (a retry split its input again): history
        echo("\nleft their map (history; attempts and duration: their last run's):")
        _table(["TASK RUN", "STATE", "ATTEMPTS", "DURATION", "WHY"], [
            [t.name, t.state, str(t.attempts), _seconds(t.duration), _short(" ".join(
                {t.left_map or "": None, t.message: None}), 110)] for t in left
        ])
    _tracebacks(run.id, tasks, gap=True)
    return 0


def _alert_text(alert: dict[str, Any]) -> str:
    """What became of the run's failure alert (``run_alerts.of_run``): a cron job's run whose
    webhook was down says here that its alert still waits for a `labloom serve`."""
    if alert["state"] == "pending":
        why = f" ({alert['reason']})" if alert["reason"] else ""
        if alert["next_try"] is None:  # wished for by a command that died before sending it
            return f"not sent yet{why}; `labloom serve` on the store sends it"
        return (f"not delivered yet{why}; kept in the store, `labloom serve` sends it "
                f"(next try {_when(alert['next_try'])})")
    if alert["state"] == "delivered":
        return f"delivered {_when(alert['at'])}"
    return f"given up {_when(alert['at'])} after {alert['attempts']} attempt(s): {alert['reason']}"


_TRACEBACKS_SHOWN = 3


def _tracebacks(run_id: str, tasks: list[Any], gap: bool = False) -> None:
    """Why the first task runs that failed did (or wait to retry): a task run that succeeded
    in the end has its failed attempts' tracebacks in its logs instead."""
    failed = [t for t in tasks if shown_traceback(t.state, t.traceback)]
    for t in failed[:_TRACEBACKS_SHOWN]:
        if gap:
            echo()
        echo(f"{t.name} {t.state}, attempt {t.attempts}:")
        for line in t.traceback.rstrip().splitlines():
            echo(f"  {line}")
    if len(failed) > _TRACEBACKS_SHOWN:
        echo(f"\n{len(failed) - _TRACEBACKS_SHOWN} more failed task run(s) have a traceback: "
             f"`labloom logs {run_id} --task NAME` (NAME[i]: a map's child) ends with it, "
             "--json gives them all")


def _logs(args: argparse.Namespace) -> int:
    if args.follow:
        return _follow(args)
    with open_store() as store:
        run = _find(store, args.run_id)
        lines, cuts = store.logs(run.id, args.task)
        named_runs = _named_tracebacks(store, run, args.task, found=bool(lines or cuts))
    if args.json:
        print(json.dumps({
            "run_id": run.id,
            "lines": [line.to_json() for line in lines],
            "cut": [{"task": c.task, "task_run_id": c.task_run_id, "kept": c.kept, "cut": c.cut}
                    for c in cuts],
            "tracebacks": [{"task": t.name, "task_run_id": t.id, "traceback": t.traceback}
                           for t in named_runs if shown_traceback(t.state, t.traceback)],
        }, indent=1))
        return 0
    for start in range(0, len(lines), _LINES_AT_ONCE):
        echo("\n".join(log_line(line.time, line.level, line.task, line.text)
                       for line in lines[start:start + _LINES_AT_ONCE]))
    for cut in cuts:
        echo(f"[labloom] {cut.task or '(flow)'}: {cut.cut} more line(s) not stored "
              f"(the store keeps {cut.kept} per task run; LABLOOM_LOG_LINES raises it)")
    if not lines and not cuts:
        echo("no log lines" + (f" for task {args.task!r}" if args.task else ""))
    _tracebacks(run.id, named_runs)  # the logs of a failed task run end with why it failed
    return 0


_TASKS_NAMED = 20
# Log lines escaped and printed as one text: a print and a pattern's pass each (100,000 lines:
# 0.2 s of 0.8), not a line's; the lines a terminal sees are the same.
_LINES_AT_ONCE = 1000


def _named_tracebacks(store: RunStore, run: Any, task: str | None, found: bool = False
                      ) -> list[Any]:
    """The task runs ``--task`` names (all without it) that hold a traceback, read alone
    (not a map's every child); ``--task`` naming none is said, with the names the run's task
    runs have. ``found``: it named some (their lines were read), no need to look."""
    tracebacks = store.tracebacks(run.id, task)
    if task is not None and not (found or tracebacks or store.find_task_runs(
            run.id, task, children=True, limit=1)):
        _no_such_task(run, task, store.task_runs(run.id))
    return tracebacks


def _no_such_task(run: Any, task: str, task_runs: list[Any]) -> None:
    """A ``--task`` that names none of the run's task runs (a typo, a task of another flow):
    said with the names there are, not as "no log lines". A run still going may create it."""
    from . import CLIError

    names = list(dict.fromkeys(t.task_name for t in task_runs))  # a map's once, fold[3] whole
    listed = ", ".join(names[:_TASKS_NAMED]) + (" ..." if len(names) > _TASKS_NAMED else "")
    theirs = f"its tasks: {listed}" if names else "it has no task runs"
    if run.state in ("Pending", "Running"):
        echo(f"run {run.id} has no task run {task!r} yet; {theirs}")
        return
    raise CLIError(f"run {run.id} has no task run {task!r}; {theirs} (NAME[i] names a map's "
                   "child, `labloom show RUN_ID` lists them all)")


def _follow(args: argparse.Namespace) -> int:
    from .log_follow import follow

    with open_store() as store:  # the run named (an ambiguous prefix is said here)
        run_id = _find(store, args.run_id).id
    run = follow(run_id, args.task, args.json)
    if run is None:
        from . import CLIError

        raise CLIError(f"run {run_id} was deleted while its lines were followed")
    if not args.json:
        with open_store() as store:
            tasks = _named_tracebacks(store, run, args.task)
        _tracebacks(run_id, tasks)
        echo(f"run {run_id} {run.state}" + (f": {run.message}" if run.message else ""))
    return 0 if run.state == "Completed" else 1


def _retry(args: argparse.Namespace) -> int:
    from ..core.errors import NotAllowedError, TargetError
    from ..export.retry import retry_run
    from . import CLIError

    with open_store() as store:  # an ambiguous prefix is named here, not as "no run"
        run_id = _find(store, args.run_id).id
    try:
        run, notes = retry_run(run_id, executor=args.executor)
    except KeyError:
        raise _unknown(args.run_id) from None
    except (TargetError, NotAllowedError) as exc:
        raise CLIError(str(exc), status=1) from None
    except OSError as exc:  # the Dask scheduler the run ran on, gone since
        raise CLIError(f"cannot start the retry: {exc}; if that scheduler is gone, retry "
                       f"elsewhere: labloom retry {run_id} --executor dask (a new local "
                       "cluster), threads or another scheduler's address", status=1) from None
    reused = [t for t in run.tasks if t.message.startswith("reused")]
    ran = [t for t in run.tasks if t not in reused]
    echo(f"retry of run {run.metadata['retry_of']}: new run {run.id} {run.state}")
    echo(f"  reused {len(reused)} result(s); ran {len(ran)} task run(s)"
          + (": " + ", ".join(f"{t.name} ({t.state})" for t in ran[:20]) if ran else ""))
    for note in notes:
        echo(f"  {note}")
    if run.message:
        echo(f"  {run.message}")
    return 0 if run.state.value == "Completed" else 1


# --- formatting ---------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> None:
    # A cell is one line: a newline or tab in a value (a param, a message) broke the rows.
    # Escaped before the widths are taken (echo escapes again, a no-op): a name holding
    # U+202E, shown as \u202e, pushed the columns after it out of line.
    lines = [[_one_line(printable(str(cell))) for cell in row] for row in [header, *rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        echo("  ".join(cells).rstrip())


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("\t", "\\t")


def _cluster(metadata: dict[str, Any]) -> str:
    """A cluster per run, as the run's record keeps it."""
    adapt = metadata.get("adapt") or {}
    unit = "jobs" if {"minimum_jobs", "maximum_jobs"} & set(adapt) else "workers"
    suffix = "_jobs" if unit == "jobs" else ""
    low, high = (float(adapt.get(k + suffix, default)) for k, default in
                 (("minimum", 0), ("maximum", float("inf"))))
    bounds = f", adaptive {low:g} to {high:g} {unit}" if adapt else ""
    return (f"cluster: {metadata['cluster_class']} for this run{bounds}, "
            f"{metadata.get('peak_workers', '?')} worker(s) at peak")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-"


def _short(text: str, width: int = 70) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
