"""`labloom schedule add|list|remove|pause|resume` and `labloom serve`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import PurePath
from typing import Any

from .options import seconds
from .running import add_run_options, executor_choice, prepare

# What tells whether a change whose answer was lost was made (``labloom`` exits 4 with it).
_TELLS = "labloom schedule list"


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    schedule = subparsers.add_parser(
        "schedule", help="run flows on a schedule", description="Manage schedules; "
        "`labloom serve` runs them."
    )
    actions = schedule.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add a schedule (checked now, not at 2 a.m.)")
    add.add_argument("target", metavar="TARGET", help="file.py[:flow] or notebook.ipynb[:flow]")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="e.g. '0 2 * * *' (2 a.m. daily)")
    when.add_argument("--every", metavar="DURATION", help="e.g. 30s, 5m, 2h, 1d, 1h30m")
    add.add_argument("--timezone", metavar="TZ", help="IANA name for --cron (default: local)")
    add.add_argument("--name", metavar="N", help="default: the flow's name")
    add.add_argument("--notify", metavar="URL",
                     help="on failure, post a Slack-compatible alert to this webhook URL, or "
                     "mail it (mailto:ADDRESS[,ADDRESS]; the relay: LABLOOM_SMTP_HOST, README)")
    add.add_argument(
        "--catchup", choices=("once", "skip"), default="once",
        help="slots missed while no scheduler ran: one catch-up run (default) or none",
    )
    add.add_argument(
        "--allow-overlap", action="store_true",
        help="start a run even if the previous one of this schedule is still running",
    )
    add_run_options(add)
    add.set_defaults(handler=add_command, tells=_TELLS)

    listing = actions.add_parser("list", help="schedules, next run times, scheduler health")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_command)

    for action, aliases, handler, text in (
        ("remove", ["delete"], remove_command, "remove a schedule"),
        ("pause", [], pause_command, "stop starting runs of a schedule"),
        ("resume", [], resume_command, "start runs again (missed slots are not caught up)"),
        ("test-alert", [], test_alert_command, "send a test alert to the schedule's --notify "
         "now, and say whether it was taken"),
    ):
        sub = actions.add_parser(action, aliases=aliases, help=text)
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=handler, tells=_TELLS if action != "test-alert" else "")

    serve = subparsers.add_parser(
        "serve", help="run the scheduler", description="Run due schedules, each run in its "
        "own process; SIGTERM or Ctrl-C stops it cleanly."
    )
    serve.add_argument(
        "--grace", type=seconds("--grace"), default=30.0, metavar="SECONDS",
        help="on shutdown, how long running runs may finish before they are terminated",
    )
    serve.add_argument("--tick", type=seconds("--tick", zero=False), default=0.5,
                       help=argparse.SUPPRESS)
    serve.set_defaults(handler=serve_command)


def _errors() -> Any:
    from ..core.errors import ScheduleError
    from . import CLIError

    return ScheduleError, CLIError


def add_command(args: argparse.Namespace) -> int:
    from ..core.secrets import is_secret_value
    from ..export.run_targets import parse_params
    from ..schedule import liveness
    from ..schedule import stored_schedules as sched
    from ..schedule.alerts import check_url, mask_url
    from ..store import store_clock

    schedule_error, cli_error = _errors()
    if args.every is not None and args.timezone is not None:
        raise cli_error(
            "--timezone applies to --cron: --every counts exact time, so a daily run moves by "
            "an hour when the clocks change; for a wall-clock time write --cron '0 2 * * *' "
            f"--timezone {args.timezone}"
        )
    try:
        # `is not None`: an empty value (a variable not set) is an error, not the option
        # left out (an empty --cron made a schedule of neither kind: a traceback).
        every = sched.parse_duration(args.every) if args.every is not None else None
        cron = sched.check_cron(args.cron) if args.cron is not None else None
        tz = sched.check_timezone(args.timezone) if args.timezone is not None else None
        if cron and tz is None:
            tz = sched.local_timezone()
        if args.notify is not None:
            check_url(args.notify)
    except ValueError as exc:
        raise cli_error(str(exc)) from None
    executor_choice(args)
    target, flow, bound = prepare(args.target, args.param)
    params = _by_name(flow, bound)
    secret = [key for key in _given_names(args.param) if is_secret_value(params[key])]
    if secret:
        raise cli_error(
            f"parameter(s) {', '.join(secret)} are secret, and a schedule keeps its parameters "
            "in the store; let the flow read them where it runs (an environment variable, a "
            "credentials file) instead of --param"
        )
    # Store what the user gave (as JSON read it), not the defaults: a later default change
    # applies, and each run checks the values against the flow's annotations again. Text the
    # flow takes as typed stays that text: `-p version=1.10` for a str is "1.10", not 1.1.
    given = parse_params(args.param)
    for key, value in given.items():
        if isinstance(params.get(key), (str, PurePath)) and not isinstance(value, str):
            given[key] = str(params[key])
    if target.flow is None:
        target = type(target)(target.path, flow.name)
    try:
        with sched.store() as conn:
            now = store_clock.now(conn)  # slots count from the store's time, as they fire by it
            schedule = sched.Schedule(
                name=args.name or flow.name, target=str(target), workdir=os.getcwd(),
                cron=cron, every=every, timezone=tz, params=given, notify=args.notify,
                executor=args.executor, address=args.address, catchup=args.catchup,
                overlap=args.allow_overlap, paused=False, anchor=now, not_before=now,
                created=now, cluster=args.cluster,
            )
            sched.add(conn, schedule)
        with sched.store() as conn:  # anew: the add's answer lost (asked) broke the first
            first = sched.next_run(conn, schedule)
    except schedule_error as exc:
        raise cli_error(str(exc)) from None
    alert = f", alerts to {mask_url(args.notify)}" if args.notify else ""
    print(f"added schedule {schedule.name!r}: {target} {schedule.spec}{alert}; "
          f"first run {sched.iso(first, tz)}")
    if args.notify:
        print(f"to see that its alerts arrive: `labloom schedule test-alert {schedule.name}`")
    with sched.store() as conn:
        if not liveness.health(conn)["running"]:
            print("no scheduler is running: start one with `labloom serve`")
    return 0


def _by_name(flow: Any, bound: dict[str, Any]) -> dict[str, Any]:
    """The flow's checked parameters by the names given: those its ``**kwargs`` took too."""
    import inspect

    named = dict(bound)
    for p in flow.signature.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            named.update(named.pop(p.name, {}))
    return named


def _given_names(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item.partition("=")[0].strip() for item in items))


class _ShownOnly(Exception):
    """Rolls back what ``list`` settled only to show it."""


def list_command(args: argparse.Namespace) -> int:
    from ..schedule import liveness
    from ..schedule import stored_schedules as sched
    from ..schedule.listing import describe_all
    from ..store import store_clock

    with sched.store() as conn:
        now = store_clock.now(conn)  # the scheduler's clock: "next" and health as it judges
        # Slots a killed scheduler left are shown as their runs ended, and left as they were:
        # the next `serve` settles them and alerts for the runs that failed. Settled here,
        # they were alerted by nobody, and `list` is what one types when serve has died.
        try:
            with sched.transaction(conn):
                liveness.settle_running(conn, now)
                rows = describe_all(conn)
                health = liveness.health(conn, now)
                raise _ShownOnly
        except _ShownOnly:
            pass
    if args.json:
        print(json.dumps({"schedules": rows, "scheduler": health}, indent=2))
        return 0
    if not rows:
        print("no schedules; add one with `labloom schedule add TARGET --every 1h`")
    for row in rows:
        last = row["last_run"]
        last_text = f"{last['status']} ({last['slot']})" if last else "never"
        if last and last["retries"]:  # a failed night fixed by a retry says so
            retry = last["retries"][-1]
            last_text += f", retried by run {retry['id']} ({retry['state']})"
        print(f"{row['name']}: {row['target']}  {row['when']}"
              f"{'  PAUSED' if row['paused'] else ''}")
        print(f"    next {row['next_run'] or '-'}  last {last_text}"
              + (f"  alerts {row['notify']}" if row["notify"] else ""))
        if row["problem"]:
            print(f"    {row['problem']}: `labloom schedule remove {row['name']}`, then add it "
                  "again with a timezone and cron expression this host knows")
        for refusal in row["refused_by"] or ():  # listed as if it would run, before
            print(f"    REFUSED by `labloom serve` pid {refusal['pid']} on {refusal['host']} "
                  f"(since {refusal['since']}): {refusal['reason']}")
        for line in _alert_lines(row):
            print(f"    {line}")
    print(_health_text(health))
    return 0


def _alert_lines(row: dict[str, Any]) -> list[str]:
    """What became of the schedule's alerts, when not all were delivered: those still to send
    and those given up (until one of the schedule's alerts is delivered)."""
    lines = []
    pending, lost = row["pending_alerts"], row["undelivered_alert"]
    if pending:
        tried = (f"; the oldest tried {pending['attempts']} time(s): {pending['last_error']}, "
                 f"next try {pending['next_try']}" if pending["attempts"] else "")
        lines.append(f"{pending['count']} alert(s) waiting to be sent{tried}")
    if lost:
        what = f"run {lost['run_id']} {lost['state']}" if lost["run_id"] else lost["state"]
        many = (f"{lost['count']} alerts NOT DELIVERED since {lost['since']}; the last"
                if lost["count"] > 1 else "alert NOT DELIVERED")
        lines.append(f"{many} ({what}) given up {lost['at']} after {lost['attempts']} "
                     f"attempt(s): {lost['reason']}. Check the webhook with `labloom schedule "
                     f"test-alert {row['name']}`"
                     + (f"; the run: `labloom show {lost['run_id']}`" if lost["run_id"] else ""))
    return lines


def _health_text(health: dict[str, Any]) -> str:
    alive = [d for d in health["schedulers"] if d["alive"]]
    if alive:
        parts = [f"pid {d['pid']} on {d['host']}, heartbeat {d['heartbeat_age']:g}s ago"
                 for d in alive]
        return "scheduler: running (" + "; ".join(parts) + ")"
    if health["schedulers"]:
        age = min(d["heartbeat_age"] for d in health["schedulers"])
        return (f"scheduler: NOT RUNNING (last heartbeat {age:g}s ago; it stopped "
                "uncleanly); start it with `labloom serve`")
    return "scheduler: not running; start it with `labloom serve`"


def _named(args: argparse.Namespace, change: Any, done: str) -> int:
    from ..core.errors import NotAllowedError
    from ..schedule import stored_schedules as sched

    schedule_error, cli_error = _errors()
    try:
        with sched.store() as conn:
            change(conn, args.name)
    except schedule_error as exc:
        raise cli_error(str(exc)) from None
    except NotAllowedError as exc:
        raise cli_error(str(exc).removeprefix("[labloom] "), 1) from None
    print(f"{done} schedule {args.name!r}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    from ..schedule import stored_schedules as sched

    going: list[str] = []
    dropped: list[int] = []

    def remove(conn: Any, name: str) -> None:
        going.extend(row[0] for row in conn.execute(
            "SELECT s.run_id FROM schedule_slots s JOIN flow_runs r ON r.id = s.run_id WHERE "
            "s.schedule = ? AND s.status = 'running' AND r.state IN ('Pending', 'Running')",
            (name,)))
        dropped.append(sched.remove(conn, name))

    status = _named(args, remove, "removed")
    if dropped and dropped[0]:  # their URL went with the schedule: said, not dropped silently
        print(f"{dropped[0]} of its failure alert(s) not sent yet went with it (its --notify "
              "did); `labloom runs --flow FLOW --state failed` lists the runs")
    for run_id in going:  # removing stops no run: one expecting it to would not know
        print(f"its run {run_id} is still going: it runs to its end and is recorded; "
              f"`labloom cancel {run_id}` stops it")
    return status


def pause_command(args: argparse.Namespace) -> int:
    from ..schedule import stored_schedules as sched

    return _named(args, lambda conn, name: sched.set_paused(conn, name, True), "paused")


def resume_command(args: argparse.Namespace) -> int:
    from ..schedule import stored_schedules as sched

    return _named(args, lambda conn, name: sched.set_paused(conn, name, False), "resumed")


def test_alert_command(args: argparse.Namespace) -> int:
    """A webhook whose token was revoked, or a channel archived, answers 404 or 410 to the
    first failure at night, said only on serve's output: this asks it now."""
    import socket

    from ..schedule import stored_schedules as sched
    from ..schedule.alerts import mask_url, try_post

    schedule_error, cli_error = _errors()
    try:
        with sched.store() as conn:
            schedule = sched.get(conn, args.name)
    except schedule_error as exc:
        raise cli_error(str(exc)) from None
    if not schedule.notify:
        raise cli_error(f"schedule {args.name!r} has no --notify: its failures alert nobody; "
                        "add it again with --notify URL")
    where = mask_url(schedule.notify)
    refused = try_post(schedule.notify, {
        "text": f"labloom: test alert for schedule {schedule.name!r} ({schedule.target}) from "
                f"{socket.gethostname()}: its failed runs are alerted here",
        "schedule": schedule.name, "state": "test", "host": socket.gethostname(),
    })
    if refused:
        raise cli_error(f"the test alert was not taken by {where}: {refused}", 1)
    print(f"test alert delivered to {where}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from ..schedule import stored_schedules as sched
    from ..schedule.daemon import ScheduleServer
    from ..schedule.mail_alerts import check_relay_for

    with sched.store() as conn:
        check_relay_for(conn)  # a bad SMTP port: refused now, not at the first alert
    scheduler = ScheduleServer(tick=args.tick, grace=args.grace)
    scheduler.install_signal_handlers()
    return scheduler.serve()
