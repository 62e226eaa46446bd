"""``labloom serve``: the embedded scheduler, one process.

Every tick it beats its heartbeat, reaps finished runs, and claims the due slot of each
schedule (see ``stored_schedules.claim_due``). It tells when a slot is due by the store's clock
(``store_clock``: the PostgreSQL server's), so schedulers on hosts whose clocks disagree, or a
host whose clock is set, fire each slot once at its time; its own cadences (heartbeat, looks
for orphans, log pruning) go by the monotonic clock, which no setting of the clock moves.

Each run is ``python -m labloom run ... --origin schedule`` in its own subprocess and session,
so a crashing flow cannot take the scheduler down and a terminal's Ctrl-C reaches only the
scheduler. SIGTERM (or SIGINT) stops new runs and waits up to ``grace`` seconds for running
ones before terminating them; a second signal terminates them at once (``stop_signals``: a
handler that takes no lock). Failure alerts are kept in the store with what they tell of, and
sent from there (``alert_sender``), with those of `labloom run --notify` commands that died
before they sent theirs (``dead_run_alerts``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..core.flow_retries import RETRY_NOTE
from ..store import home as _home
from ..store import store_clock
from ..store.db import get_database, is_transient
from . import dead_run_alerts, liveness, log_files
from . import stored_schedules as sched
from .alert_sender import AlertSender
from .alerts import failure_payload
from .refusals import Refusals
from .stop_signals import StopSignals
from .times import to_ms

log = logging.getLogger("labloom")

_TERMINATE_WAIT = 5.0  # after SIGTERM to a run, before SIGKILL


@dataclass
class _Child:
    claim: sched.Claim
    proc: subprocess.Popen[bytes]
    report: Path
    log_file: IO[bytes]
    started: float
    terminated: bool = False
    overdue_said: bool = False  # its next slot came while it ran (``_say_overdue``)


class ScheduleServer:
    def __init__(self, tick: float = 0.5, grace: float = 30.0, out: IO[str] | None = None):
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tick = tick
        self.grace = grace
        self.out = out or sys.stdout
        self.children: list[_Child] = []
        self.signals = StopSignals()
        self.alerts = AlertSender.from_env(self.id)
        self.started = time.time()
        self._last_beat = -math.inf  # monotonic, as the other cadences
        self._orphans_checked = -math.inf
        self._store_away = False
        self._unsure = False  # a claim failed: it may have landed unanswered (``_step``)
        self.refusals = Refusals(self.id)  # kept in the store: `schedule list` shows them
        self._reports = Path(tempfile.mkdtemp(prefix="labloom-serve-"))
        self._logs = _home.home() / "schedule-logs"
        self._logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log_days = log_files.kept_days()
        self._logs_pruned = -math.inf

    # --- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        self.signals.install()

    # --- the loop --------------------------------------------------------------------------

    def serve(self) -> int:
        conn: Any = get_database().connect(named_rows=True)
        liveness.beat(conn, self.id, self.started)
        self._say(f"labloom: scheduler {self.id} serving {get_database().display}")
        try:
            while not self.signals.stopping:
                conn = self._tick(conn)
                self.signals.wait(self.tick)
            self._shut_down(conn)
        finally:  # alerts first: their claims end with this scheduler's row
            # A second SIGTERM or Ctrl-C leaves alerts still being posted in the store at once,
            # as it terminates runs at once (``_shut_down``).
            self._quietly(lambda: self.alerts.close(conn, timeout=10,
                                                    hurry=lambda: self.signals.hurry))
            self._quietly(lambda: liveness.sign_off(conn, self.id))
            self._quietly(lambda: conn.close())
            shutil.rmtree(self._reports, ignore_errors=True)
            self.signals.close()
        self._say("labloom: scheduler stopped")
        return 0

    def _tick(self, conn: Any) -> Any:
        """One step, through a store that goes away for a while (a PostgreSQL server
        restarting, a SQLite file busy past every wait, a full disk): said once, the runs
        already started go on (reaped when it is back), and each tick tries a new connection.
        Returns the connection to use next (None while the store is away)."""
        try:
            if conn is None:
                conn = get_database().connect(named_rows=True)
            self._step(conn)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._unsure = True
            if not self._store_away:
                self._store_away = True
                print(f"labloom: the store {get_database().display} cannot be reached now "
                      f"({type(exc).__name__}); the scheduler waits for it, runs already "
                      "started go on", file=sys.stderr, flush=True)
            if conn is not None:
                self._quietly(conn.close)
            return None
        if self._store_away:
            self._store_away = False
            self._say("labloom: the store is back; scheduling again")
        return conn

    def _quietly(self, action: Any) -> bool:
        """Run a store action on the way out, where a store that is away must not keep the
        scheduler from stopping its runs."""
        try:
            action()
            return True
        except Exception as exc:
            log.warning("[labloom] scheduler %s: %s while stopping", self.id,
                        type(exc).__name__)
            return False

    def _step(self, conn: Any) -> None:
        ticked = time.monotonic()
        if ticked - self._last_beat >= sched.HEARTBEAT_EVERY:
            liveness.beat(conn, self.id, self.started)  # measures the store's clock again
            self.refusals.kept(conn)
            self._last_beat = ticked
        self._reap(conn)
        if self._unsure:  # claims that landed though they seemed to fail: run them now
            launched = {(c.claim.schedule.name, c.claim.slot) for c in self.children}
            for landed in sched.unlaunched(conn, self.id, launched):
                self._launch(conn, landed)
            self._unsure = False
        if self._logs_pruned + log_files.PRUNE_EVERY <= ticked:
            self._logs_pruned = ticked
            try:  # the files' times are this host's
                log_files.prune(self._logs, self._log_days, time.time())
            except OSError as exc:  # a full or read-only disk must not stop the schedules
                log.warning("[labloom] old run logs in %s not deleted: %s", self._logs, exc)
        if self._orphans_checked + sched.HEARTBEAT_EVERY <= ticked:
            self._orphans_checked = ticked
            # Slots a killed scheduler left running: follow their runs to their end.
            if conn.execute("SELECT 1 FROM schedule_slots WHERE status = 'running' AND "
                            "scheduler != ?", (self.id,)).fetchone():
                settled: list[liveness.Settled] = []
                with sched.transaction(conn):  # their alerts kept in it too
                    liveness.settle_running(conn, store_clock.now(conn), settled=settled)
                    self._alert_settled(conn, settled)
            dead_run_alerts.compose(conn)  # `labloom run --notify` commands killed mid-run
        schedules = sched.get_all(conn)
        self.refusals.forget_gone(conn, (s.name for s in schedules))
        for schedule in schedules:
            now = store_clock.now(conn)  # no round trip: the offset measured at the last beat
            if schedule.paused:  # not refused, not run: judged again once resumed
                self.refusals.paused(conn, schedule.name)
                continue
            if (self.signals.stopping
                    or not self.refusals.computable(conn, schedule, now)
                    or not self.refusals.mailable(conn, schedule)):
                continue
            if sched.next_run(conn, schedule, now) > now:
                continue  # a read: no write transaction for schedules that are not due
            if not schedule.overlap:
                self._say_overdue(conn, schedule)
            try:  # runs settled meanwhile are alerted in the transaction that records them
                claim = sched.claim_due(conn, schedule, self.id, now, self._alert_settled)
            except Exception:
                log.exception("[labloom] schedule %r: could not check it", schedule.name)
                self._unsure = True
                continue
            if claim is not None:
                self._launch(conn, claim)
        self.alerts.step(conn)

    def _alert_settled(self, conn: Any, settled: list[liveness.Settled]) -> None:
        """Alerts for runs a gone scheduler started that ended badly: nobody else sends them
        (the settling transaction made this scheduler the one that saw them end)."""
        urls = {s.name: s.notify for s in sched.get_all(conn)}
        for slot in settled:
            url = urls.get(slot.schedule)
            self._say(f"labloom: schedule {slot.schedule!r}: run {slot.run_id or '-'} "
                      f"{slot.status} ({slot.note})")
            if slot.status == "completed" or not url:
                continue
            flow, state, failed = liveness.run_outcome(conn, slot.run_id)
            # Said as a run this scheduler started is: which task failed, and the file its
            # process wrote (when this host holds it); the note alone named neither.
            hard = [name for name, kind in failed if kind != "UpstreamFailed"]
            note = slot.note + (f"; {len(hard)} task run(s) failed; first: {hard[0]}"
                                if hard else "")
            log_path = self._log_path(slot.schedule, slot.slot_time)
            self.alerts.enqueue(conn, slot.schedule, failure_payload(
                flow or slot.schedule, slot.run_id, state or slot.status.capitalize(), failed,
                note, schedule=slot.schedule, log=str(log_path) if log_path.exists() else None,
            ))

    def _say_overdue(self, conn: Any, schedule: sched.Schedule) -> None:
        """A run of ``schedule`` still going when its next slot is due: that slot, and each
        one due while it goes on, is skipped (no overlap). Said, and alerted, once per run: a
        nightly run that hung skipped every night after it, each slot recorded skipped, in
        silence."""
        child = next((c for c in self.children if c.claim.schedule.name == schedule.name
                      and not c.overdue_said), None)
        if child is None:
            return
        row = conn.execute("SELECT run_id FROM schedule_slots WHERE schedule = ? AND "
                           "slot_time = ?", (schedule.name, child.claim.slot)).fetchone()
        run_id = row[0] if row else None
        if run_id is None and store_clock.now(conn) - child.started < liveness.START_GRACE:
            return  # its process still imports the flow: said once it names its run
        child.overdue_said = True
        # A run waiting for its next attempt (@flow(retries=...)) is not hung: say so.
        note = run_id and conn.execute("SELECT message FROM flow_runs WHERE id = ?",
                                       (run_id,)).fetchone()
        retrying = note[0] if note and RETRY_NOTE.match(note[0] or "") else ""
        ran = store_clock.now(conn) - child.started
        why = (f"still running after {ran:.0f}s when the next run was "
               f"due{f' ({retrying})' if retrying else ''}: the runs due while it goes on are "
               f"skipped (no overlap). Cancel it (`labloom cancel {run_id or 'RUN_ID'}`, the "
               f"Flows panel) or stop its process (pid {child.proc.pid}), "
               + ("give its flow fewer retries or a shorter retry_delay" if retrying else
                  "give the flow or its tasks a timeout")
               + ", or add the schedule again with --allow-overlap")
        self._say(f"labloom: schedule {schedule.name!r}: run {run_id or '-'} {why}")
        if schedule.notify:
            self.alerts.enqueue(conn, schedule.name, failure_payload(
                schedule.target, run_id, "overdue", [], why, schedule=schedule.name,
                log=child.log_file.name))

    def _log_path(self, schedule: str, slot: float) -> Path:
        """The file a slot's run process writes its output to (any scheduler of this home)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(slot))
        return self._logs / f"{_safe(schedule)}-{stamp}-{to_ms(slot) % 1000:03d}.log"

    def _launch(self, conn: Any, claim: sched.Claim) -> None:
        s = claim.schedule
        report = self._reports / f"{uuid.uuid4().hex}.json"
        argv = [*run_argv(s), "--report", str(report)]
        env = dict(os.environ)
        env["LABLOOM_SCHEDULE"] = s.name
        env["LABLOOM_SCHEDULED_TIME"] = repr(claim.slot)
        env.pop("LABLOOM_NOTIFY_DELAYS", None)
        log_path = self._log_path(s.name, claim.slot)
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed when the run is reaped
        started = store_clock.now(conn)  # as the slot's time: the store's
        try:
            proc = subprocess.Popen(
                argv, cwd=s.workdir if Path(s.workdir).is_dir() else None, env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:  # its interpreter gone (a venv rebuilt under serve), no memory
            log_file.close()
            note = f"could not start: {type(exc).__name__}"
            why = (f"the run process {note} ({exc.strerror or 'no reason given'}) from "
                   f"{argv[0]}; restart `labloom serve` where that works")
            with sched.transaction(conn):  # the slot and its alert, or neither
                sched.finish_slot(conn, s.name, claim.slot, "crashed", started=started,
                                  ended=store_clock.now(conn), note=note)
                if s.notify:
                    self.alerts.enqueue(conn, s.name, failure_payload(
                        s.target, None, "crashed", [], why, schedule=s.name))
            self._say(f"labloom: schedule {s.name!r}: {why}")
            return
        # Tracked first: a store gone meanwhile must not leave the run without its reaper.
        self.children.append(_Child(claim, proc, report, log_file, started))
        what = "catch-up run" if claim.catchup else "run"
        self._say(f"labloom: schedule {s.name!r}: {what} for {sched.iso(claim.slot, s.timezone)}"
                  f" started (pid {proc.pid}, log {log_path})")
        sched.finish_slot(conn, s.name, claim.slot, "running", started=started)

    def _reap(self, conn: Any) -> None:
        for child in list(self.children):
            code = child.proc.poll()
            if code is None:
                continue
            # Recorded before it is let go: a store away now leaves it for the next reap.
            self._finished(conn, child, code)
            self.children.remove(child)
            child.log_file.close()
            child.report.unlink(missing_ok=True)

    def _finished(self, conn: Any, child: _Child, code: int) -> None:
        s = child.claim.schedule
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):  # no report: the run was never made
            data = json.loads(child.report.read_text(encoding="utf-8"))
        if data:
            status = "completed" if data.get("state") == "Completed" else data["state"].lower()
        elif child.terminated:
            status = "terminated"
        elif code == 2:
            status = "refused"  # the target or its parameters no longer work
        else:
            status = "crashed"
        note = data.get("error") or (f"exit status {code}" if status != "completed" else None)
        with sched.transaction(conn):  # the slot's end and its alert, or neither
            mine = sched.finish_slot(conn, s.name, child.claim.slot, status, note=note,
                                     ended=store_clock.now(conn), run_id=data.get("run_id"),
                                     exit_code=code)
            if mine and status != "completed" and s.notify:
                self.alerts.enqueue(conn, s.name, _failure_alert(s, child, data, status, code))
        self._say(f"labloom: schedule {s.name!r}: run {data.get('run_id') or '-'} {status}"
                  + ("" if mine else " (recorded meanwhile by another scheduler)"))

    def _shut_down(self, conn: Any) -> None:
        if self.children:
            self._say(f"labloom: stopping; waiting up to {self.grace:g}s for "
                      f"{len(self.children)} run(s)")
        deadline = time.monotonic() + self.grace
        while self.children and time.monotonic() < deadline and not self.signals.hurry:
            self._quietly(lambda: self._reap(conn))
            self._quietly(lambda: liveness.beat(conn, self.id, self.started))
            self.signals.wait(min(self.tick, 0.2))
        self._quietly(lambda: self._reap(conn))
        for child in self.children:
            child.terminated = True
            _signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + _TERMINATE_WAIT
        while self.children and time.monotonic() < deadline:
            if not self._quietly(lambda: self._reap(conn)):
                break  # the store is away: the runs are stopped all the same
            time.sleep(0.05)
        for child in self.children:
            _signal(child.proc, signal.SIGKILL)
            child.proc.wait(timeout=5)
        self._quietly(lambda: self._reap(conn))

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def run_argv(s: sched.Schedule) -> list[str]:
    """The command that runs one slot of ``s`` (also "run now" from the Flows panel)."""
    argv = [sys.executable, "-m", "labloom", "run", s.target, "--origin", "schedule"]
    for key, value in s.params.items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    if s.executor:
        argv += ["--executor", s.executor]
    if s.address:
        argv += ["--address", s.address]
    if s.cluster:
        argv += ["--cluster", s.cluster]
    return argv


def _failure_alert(s: sched.Schedule, child: _Child, data: dict[str, Any], status: str,
                   code: int) -> dict[str, Any]:
    """The alert of a run this scheduler started that did not complete (``data``: its report,
    empty when the run process made no run: then the target names the flow)."""
    failed = [tuple(item) for item in data.get("failed_tasks", [])]
    error = data.get("error") or {
        "refused": f"the run process refused its target {s.target} or its parameters "
                   "(exit status 2)",
        "terminated": "terminated when the scheduler shut down",
    }.get(status, f"the run process ended with exit status {code}")
    return failure_payload(data.get("flow") or s.target, data.get("run_id"),
                           data.get("state") or status, failed, error, schedule=s.name,
                           log=child.log_file.name)


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)  # the run and anything it started


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
