"""`labloom run` and `labloom export`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

_INTERRUPTED = 130
UNRECORDED = 3  # the run completed, but the store could not take all of its record


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    run = subparsers.add_parser(
        "run",
        help="run a flow from a file or notebook",
        description="Run a flow with live progress; exit status 0 only when the run completed "
        "(1: it did not; 3: it completed but the store could not take all of its record).",
    )
    run.add_argument("target", metavar="TARGET", help="file.py[:flow] or notebook.ipynb[:flow]")
    add_run_options(run)
    run.add_argument(
        "--notify", metavar="URL",
        help="if the run fails, post a Slack-compatible alert to this webhook URL, or mail it "
        "(mailto:ADDRESS[,ADDRESS]; the relay: LABLOOM_SMTP_HOST, README)"
    )
    # Set by `labloom serve` for the runs it starts; not for people.
    run.add_argument("--origin", default="script", help=argparse.SUPPRESS)
    run.add_argument("--report", metavar="FILE", help=argparse.SUPPRESS)
    # Set by the Flows panel's launch form (server_extension/launch.py): print the flow's
    # parameters as JSON and exit; take more --param items from an environment variable (a
    # JSON list), where a secret value stays out of the process list.
    run.add_argument("--describe", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--params-env", metavar="VAR", help=argparse.SUPPRESS)
    run.set_defaults(handler=run_command)

    export = subparsers.add_parser(
        "export",
        help="write a notebook's flows as a module",
        description="Write a module holding the notebook's imports, tasks, helpers and each "
        "%%flow cell as a @flow function; report what was left out.",
    )
    export.add_argument("notebook", metavar="NOTEBOOK")
    export.add_argument("-o", "--output", metavar="OUT.py", help="default: beside the notebook")
    export.add_argument("--flow", metavar="NAME", help="export only this flow")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    export.set_defaults(handler=export_command)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options `run` and `schedule add` share."""
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a flow parameter; VALUE is read as JSON where it parses, else as a string, and "
        "must fit the parameter's type (a notebook's: its annotation, else its default's)",
    )
    parser.add_argument(
        "--executor", metavar="E", help="local, threads, dask, or a scheduler address"
    )
    parser.add_argument("--address", metavar="A", help="a Dask scheduler address (tcp://...)")
    parser.add_argument(
        "--cluster", metavar="PROFILE",
        help="a named cluster profile (c.Labloom.clusters or LABLOOM_CLUSTERS): a Dask cluster "
        "started for the run, scaled between its bounds and closed after it",
    )


def executor_choice(args: argparse.Namespace) -> str | None:
    """What ``--executor``, ``--address`` and ``--cluster`` choose, checked now: a cluster
    profile as the choice ``cluster:NAME``."""
    from ..executors import PREFIX
    from . import CLIError

    if args.cluster is not None:
        if args.executor or args.address:
            given = "--executor" if args.executor else "--address"
            raise CLIError(f"--cluster starts a cluster for the run, {given} names another "
                           f"executor; drop one of them")
        choice = f"{PREFIX}{args.cluster}"
        check_executor(choice)
        return choice
    check_executor(args.executor, args.address)
    return str(args.executor) if args.executor else None


def check_executor(choice: str | None, address: str | None = None) -> None:
    from ..core.errors import ClusterConfigError
    from ..executors import PREFIX, unknown_executor
    from . import CLIError

    if address and choice not in (None, "dask", address):
        raise CLIError(
            f"the scheduler address {address} needs the dask executor, not {choice!r}; "
            "drop --executor or --address"
        )
    if choice is None:
        return
    problem = unknown_executor(choice)
    if problem:
        raise CLIError(problem)
    if choice.startswith(PREFIX):
        from ..executors.cluster_profiles import profile_executor

        try:  # the profile, its class and options: checked now, not when the run starts
            profile_executor(choice.removeprefix(PREFIX))
        except ClusterConfigError as exc:
            raise CLIError(str(exc)) from None


def prepare(target_text: str, param_items: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """The target, its flow and checked parameters; a CLIError (status 2) on any mistake."""
    from ..core.errors import TargetError
    from ..export.run_targets import check_params, load_flow, parse_params, parse_target, raw_params
    from . import CLIError

    try:
        target = parse_target(target_text)
        params = parse_params(param_items)
        flow = load_flow(target)
        return target, flow, check_params(flow, params, raw_params(param_items))
    except TargetError as exc:
        raise CLIError(str(exc)) from None
    except FileNotFoundError as exc:
        raise CLIError(f"no such file: {exc.filename}") from None


def run_command(args: argparse.Namespace) -> int:
    from ..schedule.alerts import check_url
    from . import CLIError

    if args.describe:
        return _describe(args.target)
    if args.params_env:
        args.param = [*args.param, *_params_from_env(args.params_env)]
    if args.notify is not None:  # an empty one too: see check_url
        from ..core.errors import ScheduleError
        from ..schedule.alert_sender import timeout_from_env

        try:
            check_url(args.notify)
            timeout_from_env()  # now, not after the run: its alert would be lost to it
        except (ValueError, ScheduleError) as exc:
            raise CLIError(str(exc)) from None
    choice = executor_choice(args)
    _target, flow, params = prepare(args.target, args.param)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args, flow, choice, params, previous)
    finally:  # (put back already unless it raised: before the command's hard exit)
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, flow: Any, choice: str | None, params: dict[str, Any],
         previous: Any) -> int:
    """The run, started, waited for and reported; SIGTERM raises KeyboardInterrupt until
    it is reported, then ``previous`` is its handler again."""
    from ..core.at_exit import end_interrupted
    from ..core.observers import add_run_observer
    from ..core.process_internals import release_before_hard_exit
    from ..core.states import State
    from . import CLIError
    from .run_reports import alert, point_slot, report, report_unstarted, say_failure

    run = None
    pointed = False  # its schedule slot, if serve started it, names it
    unseen = False  # interrupted before ``flow.run`` returned the run
    interrupted = False
    wish = _wish(args.notify)
    # The run as it starts: a Ctrl-C or SIGTERM before ``flow.run`` returns it (its driver
    # starting while its tasks already run, a cluster starting) left it to go on unseen until
    # ``os._exit``, recorded Running for good. It is ended, and reported as any run that
    # began: --report (`labloom serve` records its slot from it) and --notify's alert; on
    # stderr the command says only that it was interrupted, as before the run began.
    # Called first, and a C method: no Python frame where an interrupt could land before
    # the run is kept (the store's observer, which starts its writer thread, was before it).
    started: list[Any] = []
    stop_watching = add_run_observer(started.append, first=True)
    try:
        try:
            run = flow.run(
                executor=choice, address=args.address, origin=args.origin,
                background=True, **params,
            )
        finally:
            stop_watching()
        pointed = point_slot(run, args)
        run.wait()
    except KeyboardInterrupt:
        interrupted = True
        if run is None:  # interrupted inside flow.run: it started, or no run began
            unseen, run = True, _begun(started, flow)
        if run is not None:
            # A second Ctrl-C while the run settles (a cluster per run closing, its busy
            # workers given 4 s): recorded Cancelled all the same (``end_interrupted`` ends
            # it), and the command ends now. It went on to the interpreter's exit, which
            # waited for that close, and did not say how the run ended.
            with contextlib.suppress(KeyboardInterrupt):
                end_interrupted(run)  # recorded Cancelled, even while a task holds its thread
                pointed = pointed or point_slot(run, args)
    except ValueError as exc:  # an executor that cannot be made
        report_unstarted(_begun(started, flow), args, wish)
        raise CLIError(str(exc)) from None
    except OSError as exc:  # a Dask scheduler that cannot be reached
        report_unstarted(_begun(started, flow), args, wish)
        where = args.address or args.executor or (
            f"cluster profile {args.cluster!r}" if args.cluster else "the executor")
        if str(exc).startswith("[labloom]"):  # said already, naming the address
            raise CLIError(str(exc).removeprefix("[labloom] ")) from None
        raise CLIError(f"cannot reach {where}: {exc}; check the address and that the "
                       "scheduler is running") from None
    finally:
        if wish is not None:
            wish.stop()  # a run that never started: no later run takes its wish
    # SIGTERM still raises KeyboardInterrupt here: one as the run ended (`labloom serve`
    # stopping, a job runner's time up) killed the command before its report, and serve
    # recorded the slot terminated, with no run, for a run recorded Completed.
    reported: list[int] = []  # the run's records missing, once its report is written
    try:
        if run is not None:
            report(run, args, reported)
            if args.notify:  # not held: its posts may take minutes (a kept wish stays)
                alert(run, args.notify, wish is not None and wish.kept)
            if not unseen:  # one line, as before a run began (a cluster starting, say)
                say_failure(run)
    except KeyboardInterrupt:  # a second Ctrl-C, or the first after the run ended
        interrupted = True
        if run is not None:  # it landed before the hold began: reported now
            with contextlib.suppress(KeyboardInterrupt):
                report(run, args, reported)
    finally:
        signal.signal(signal.SIGTERM, previous)
    lost = reported[0] if reported else 0
    if interrupted:
        print("labloom: interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Task threads still sleeping in user code would keep the interpreter alive. What
        # multiprocessing holds (the embedded cluster's semaphores) is let go of first.
        release_before_hard_exit()
        os._exit(_INTERRUPTED)
    if run is None or run.state is not State.COMPLETED:
        return 1
    return UNRECORDED if lost else 0


def _wish(url: str | None) -> Any:
    """With --notify, the wish for the run's alert, kept in the store as the run starts
    (``run_alerts.StartWish``): a serve alerts for the run if this command dies."""
    if not url:
        return None
    from ..schedule.run_alerts import StartWish

    return StartWish(url)


def _begun(started: list[Any], flow: Any) -> Any:
    """The command's run as the run observers saw it start (None: none started), not a
    subflow of its body."""
    return next((run for run in started if run.flow is flow), None)


def _describe(target_text: str) -> int:
    from ..core.errors import TargetError
    from ..export.form import describe_flow
    from ..export.run_targets import load_flow, parse_target
    from . import CLIError

    try:
        flow = load_flow(parse_target(target_text))
    except TargetError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(describe_flow(flow)))
    return 0


def _params_from_env(name: str) -> list[str]:
    from . import CLIError

    items = json.loads(os.environ.pop(name, "[]"))
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise CLIError(f"{name} must hold a JSON list of NAME=VALUE texts")
    return items


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # A SIGTERM often came to the whole process group, the workers of labloom's clusters too:
    # their nannies must not start new ones, which ran finished tasks again.
    stopping = sys.modules.get("labloom.executors.dask_stopping")
    if stopping is not None:
        stopping.stop_restarts()
    raise KeyboardInterrupt


def export_command(args: argparse.Namespace) -> int:
    from ..core.errors import LabloomError
    from ..export.exporter import export_notebook
    from . import CLIError

    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise CLIError(f"no such notebook: {notebook}")
    try:
        report = export_notebook(notebook, args.output, args.flow)
    except LabloomError as exc:
        raise CLIError(str(exc)) from None  # the notebook or --flow must change: a usage error
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    return 0
