"""`labloom serve` in subprocesses: runs on time, stops cleanly, no overlap, catch-up, two
schedulers on one store. Every wait is bounded and every process is stopped."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from cli_helpers import alive, labloom, slot_rows, start_labloom, stop, store_of, wait_for, write

FLOW = """
    import os, time
    from labloom import flow, task

    @task
    def work(seconds, out):
        start = time.time()
        with open(out, "a") as f:
            f.write(f"start {os.environ['LABLOOM_SCHEDULED_TIME']} {os.getpid()} {start}\\n")
        time.sleep(seconds)  # a run that lasts: overlap, grace periods and SIGTERM are tested
        with open(out, "a") as f:
            f.write(f"end {os.environ['LABLOOM_SCHEDULED_TIME']} {os.getpid()} {time.time()}\\n")

    @flow
    def job(out: str, seconds: float = 0.0):
        work(seconds, out)
"""


def statuses(home: Path) -> list[object]:
    return [row["status"] for row in slot_rows(home)]


def add(home: Path, *args: str) -> None:
    out = labloom(home, "schedule", "add", *args)
    assert out.returncode == 0, out.stderr


def add_every_second_job(home: Path, seconds: float) -> Path:
    """FLOW's job scheduled every second, each run taking ``seconds``; the file it writes."""
    write(home / "flows.py", FLOW)
    out = home / "out.txt"
    add(home, "flows.py:job", "--every", "1s", "-p", f"out={out}", "-p", f"seconds={seconds}")
    return out


def terminate(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str]:
    """SIGTERM, then a bounded wait for a clean exit."""
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=timeout)
    return proc.returncode, stdout


def test_every_two_seconds_then_sigterm(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = tmp_path / "out.txt"
    add(tmp_path, "flows.py:job", "--every", "2s", "-p", f"out={out}")
    # A grace of ten minutes: a scheduler that, once signalled, waited out its grace (or for
    # anything but the run it may have under way, which ends at once) would hang past the
    # guard in ``terminate`` instead of stopping.
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", "--grace", "600")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 3, 30, "three runs")
        listing = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
        assert listing["scheduler"]["running"]
        [scheduler] = listing["scheduler"]["schedulers"]
        assert scheduler["alive"] and scheduler["heartbeat_age"] >= 0, scheduler
        # Its heartbeat goes on (rather than an age under a bound, which a busy machine passes).
        beat = _heartbeat(tmp_path)
        wait_for(lambda: _heartbeat(tmp_path) != beat, 30, "the scheduler's next heartbeat")
        assert "scheduler: running" in labloom(tmp_path, "schedule", "list").stdout
        code, stdout = terminate(proc, timeout=120)
        assert code == 0
    finally:
        stop(proc)
    assert "scheduler stopped" in stdout
    rows = slot_rows(tmp_path)
    done = [r for r in rows if r["status"] == "completed"]
    assert all(r["run_id"] and r["exit_code"] == 0 for r in done)
    slots = [float(str(r["slot_time"])) for r in done]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(gap / 2.0 - round(gap / 2.0)) < 1e-3 and gap >= 2 for gap in gaps), gaps
    assert not [r for r in rows if r["status"] == "running"]
    listing = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
    assert listing["scheduler"] == {"running": False, "schedulers": []}  # signed off
    assert listing["schedules"][0]["last_run"]["status"] == "completed"


def test_runs_of_one_schedule_do_not_overlap(tmp_path: Path) -> None:
    out = add_every_second_job(tmp_path, seconds=2.5)
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 2, 40, "two long runs")
        code, _ = terminate(proc)
        assert code == 0
    finally:
        stop(proc)
    spans: dict[str, list[float]] = {}
    for line in out.read_text().splitlines():
        _kind, slot, _pid, when = line.split()
        spans.setdefault(slot, []).append(float(when))
    intervals = sorted((v[0], v[-1]) for v in spans.values())
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end, intervals
    skipped = [r for r in slot_rows(tmp_path) if r["status"] == "skipped"]
    assert skipped and all("still running" in str(r["note"]) for r in skipped)


def _backdate(home: Path, seconds: float) -> None:
    """Pretend the schedule was added ``seconds`` ago and no scheduler ran since."""
    conn = store_of(home)
    assert conn is not None
    with conn:
        conn.execute("UPDATE schedules SET anchor = anchor - ?, not_before = not_before - ?,"
                     " created = created - ?", (seconds, seconds, seconds))


def _heartbeat(home: Path) -> object:
    """The scheduler's last beat (it beats at the start of a tick, once a second at most)."""
    conn = store_of(home)
    assert conn is not None
    with conn:
        return conn.execute("SELECT beat FROM schedulers").fetchone()[0]


def test_one_catch_up_run_after_downtime(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = tmp_path / "out.txt"
    add(tmp_path, "flows.py:job", "--every", "1h", "-p", f"out={out}", "--name", "hourly")
    add(tmp_path, "flows.py:job", "--every", "1h", "-p", f"out={out}", "--name", "skipper",
        "--catchup", "skip")
    _backdate(tmp_path, 3.5 * 3600)  # slots at -2.5h, -1.5h, -0.5h were missed
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: "completed" in statuses(tmp_path) and len(slot_rows(tmp_path)) >= 2,
                 30, "the catch-up run")
        # Nothing else may start in the ticks that follow: two more heartbeats (each begins a
        # tick) mean that a whole tick ran after the one that saw the catch-up run end.
        for _ in range(2):
            beat = _heartbeat(tmp_path)
            wait_for(lambda beat=beat: _heartbeat(tmp_path) != beat, 30, "the next heartbeat")
        code, stdout = terminate(proc)
        assert code == 0
    finally:
        stop(proc)
    rows = {r["schedule"]: r for r in slot_rows(tmp_path)}
    assert len(slot_rows(tmp_path)) == 2
    assert rows["hourly"]["status"] == "completed" and "catch-up" in str(rows["hourly"]["note"])
    assert rows["skipper"]["status"] == "skipped" and "missed" in str(rows["skipper"]["note"])
    assert "catch-up run" in stdout
    assert len([line for line in out.read_text().splitlines() if line.startswith("start")]) == 1


def test_sigterm_waits_for_a_run_within_the_grace_period(tmp_path: Path) -> None:
    out = add_every_second_job(tmp_path, seconds=1.5)
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", "--grace", "20")
    try:
        wait_for(lambda: out.exists() and "start" in out.read_text(), 30, "a run to start")
        code, stdout = terminate(proc)
        assert code == 0
    finally:
        stop(proc)
    assert "waiting up to 20s" in stdout
    assert statuses(tmp_path)[0] == "completed"
    assert "end" in out.read_text()


def test_sigterm_terminates_runs_after_the_grace_period(tmp_path: Path) -> None:
    # The run sleeps two minutes, twice the guard in ``terminate``: a scheduler that waited
    # for it to end, past its grace, would hang there, or record it completed.
    out = add_every_second_job(tmp_path, seconds=120)
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", "--grace", "1")
    try:
        wait_for(lambda: out.exists() and "start" in out.read_text(), 30, "a run to start")
        pid = int(out.read_text().split()[2])
        code, stdout = terminate(proc, timeout=60)
        assert code == 0
    finally:
        stop(proc)
    assert "waiting up to 1s for 1 run(s)" in stdout
    row = slot_rows(tmp_path)[0]
    assert row["status"] == "cancelled"  # the run saw SIGTERM and finished as Cancelled
    ended = [line for line in out.read_text().splitlines() if line.startswith("end")]
    assert not ended  # stopped in its sleep, not waited for
    assert row["run_id"]
    wait_for(lambda: not alive(pid), 60, "the run's process to exit")


def test_two_schedulers_never_run_the_same_slot(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = tmp_path / "out.txt"
    add(tmp_path, "flows.py:job", "--every", "1s", "-p", f"out={out}", "--allow-overlap")
    first = start_labloom(tmp_path, "serve", "--tick", "0.05")
    second = start_labloom(tmp_path, "serve", "--tick", "0.05")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 5, 40, "five runs")
        health = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["scheduler"]
        assert len(health["schedulers"]) == 2
        codes = [terminate(first)[0], terminate(second)[0]]
        assert codes == [0, 0]
    finally:
        stop(first)
        stop(second)
    started = [line.split()[1] for line in out.read_text().splitlines()
               if line.startswith("start")]
    assert len(started) == len(set(started))
    rows = slot_rows(tmp_path)
    assert len(started) == len([r for r in rows if r["status"] == "completed"])
    assert len({r["scheduler"] for r in rows}) >= 1


def test_a_sigkilled_server_is_replaced_without_losing_its_running_slot(tmp_path: Path) -> None:
    out = add_every_second_job(tmp_path, seconds=3)
    first = start_labloom(tmp_path, "serve", "--tick", "0.1")
    second = None
    orphan_pid = None
    try:
        # The slot names its run while the run is still going, not only when it ends.
        wait_for(lambda: any(r["status"] == "running" and r["run_id"]
                             for r in slot_rows(tmp_path)), 30, "a running slot with its run")
        [orphan] = [r for r in slot_rows(tmp_path) if r["status"] == "running"]
        # The slot names its run as the run is created, before its task writes its first line
        # (the run's pid): on a loaded machine that line may still be coming.
        wait_for(lambda: out.exists() and "start" in out.read_text(), 30, "the run's task")
        orphan_pid = int(out.read_text().split()[2])
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        listing = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
        assert listing["scheduler"]["running"] is False  # its pid is dead: seen at once
        second = start_labloom(tmp_path, "serve", "--tick", "0.1")
        # The orphaned run completes; the new server then runs slots of its own at once
        # (not after the dead server's heartbeat has gone stale).
        wait_for(lambda: any(r["status"] == "completed" and r["run_id"] != orphan["run_id"]
                             for r in slot_rows(tmp_path)), 25, "a run of the new server")
        code, _ = terminate(second)
        assert code == 0
    finally:
        stop(first)
        if second is not None:
            stop(second)
        if orphan_pid is not None and alive(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)
    rows = {r["slot_time"]: r for r in slot_rows(tmp_path)}
    followed = rows[orphan["slot_time"]]
    assert (followed["status"], followed["run_id"]) == ("completed", orphan["run_id"])
    assert "lost" not in [r["status"] for r in rows.values()]


def test_a_clean_stop_after_an_unclean_one_is_what_list_reports(tmp_path: Path) -> None:
    def started() -> subprocess.Popen[str]:
        proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
        wait_for(lambda: json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
                 ["scheduler"]["running"], 30, "the scheduler's first heartbeat")
        return proc

    killed = started()
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(60)
    finally:
        stop(killed)
    assert "stopped uncleanly" in labloom(tmp_path, "schedule", "list").stdout
    clean = started()
    try:
        assert terminate(clean)[0] == 0
    finally:
        stop(clean)
    listing = labloom(tmp_path, "schedule", "list")
    assert "scheduler: not running; start it with `labloom serve`" in listing.stdout, listing.stdout
    assert "uncleanly" not in listing.stdout


def test_a_schedule_this_host_cannot_compute_does_not_stop_the_others(tmp_path: Path) -> None:
    # A team's store is shared by hosts: a schedule added on one whose time zone database knows
    # a zone this host's does not (or by a newer labloom) must not take this host's scheduler
    # down, nor the schedules that work; it is named once, with what to do.
    write(tmp_path / "flows.py", FLOW)
    out = tmp_path / "out.txt"
    add(tmp_path, "flows.py:job", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin",
        "--name", "a-elsewhere", "-p", f"out={out}")
    add(tmp_path, "flows.py:job", "--every", "1s", "--name", "b-here", "-p", f"out={out}")
    conn = store_of(tmp_path)
    assert conn is not None
    with conn:
        conn.execute("UPDATE schedules SET timezone = 'Mars/Olympus_Mons' "
                     "WHERE name = 'a-elsewhere'")
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 2 or proc.poll() is not None,
                 40, "two runs of the schedule that works")
        assert proc.poll() is None, proc.communicate(timeout=60)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 0
    said = stdout + stderr
    assert "Traceback" not in said
    assert said.count("Mars/Olympus_Mons") == 1, said  # once, not at every tick
    assert "'a-elsewhere'" in said and "labloom schedule remove a-elsewhere" in said
    listing = labloom(tmp_path, "schedule", "list")  # was a traceback: the list names it
    assert listing.returncode == 0, listing.stderr
    assert "cannot compute its times" in listing.stdout and "Mars/Olympus_Mons" in listing.stdout
    rows = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"]
    assert [r["problem"] is not None for r in rows] == [True, False]


def test_slots_recorded_while_the_clock_ran_ahead_do_not_silence_the_schedule(
    tmp_path: Path,
) -> None:
    # A machine booted with its clock a year ahead (a dead RTC battery, a restored VM) until NTP
    # set it back: the slot its scheduler ran meanwhile is stamped a year from now. Slots are
    # handled up to the latest recorded one, so the schedule then ran nothing for a year, while
    # `schedule list` named that far date as the next run.
    write(tmp_path / "flows.py", FLOW)
    out = tmp_path / "out.txt"
    add(tmp_path, "flows.py:job", "--every", "1s", "-p", f"out={out}")
    conn = store_of(tmp_path)
    assert conn is not None
    with conn:
        [anchor] = conn.execute("SELECT anchor FROM schedules").fetchone()
        ahead = anchor + 365 * 86400  # a slot of the schedule's, as that scheduler claimed it
        conn.execute("INSERT INTO schedule_slots (schedule, slot_time, status, scheduler, "
                     "claimed, started, ended, note) VALUES ('job', ?, 'completed', 'gone', ?, "
                     "?, ?, NULL)", (ahead, ahead, ahead, ahead + 1))
    listing = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
    assert listing["schedules"][0]["next_run"] < time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                               time.gmtime(ahead - 86400))
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 3, 40,
                 "runs of the schedule now, not in a year")
        code, _ = terminate(proc)
    finally:
        stop(proc)
    assert code == 0


def test_a_scheduled_run_gets_a_text_parameter_as_typed(tmp_path: Path) -> None:
    # `labloom run -p version=1.10` gives a `str` parameter "1.10" (the text as typed), but the
    # schedule stored the JSON reading 1.1, so every scheduled run got "1.1": another model
    # version than the one the user ran by hand and then scheduled.
    write(tmp_path / "flows.py", """
        from labloom import flow

        @flow
        def release(version: str, out: str, tries: int = 1):
            with open(out, "a") as f:
                f.write(repr((version, tries)) + "\\n")
    """)
    out = tmp_path / "out.txt"
    by_hand = labloom(tmp_path, "run", "flows.py:release", "-p", "version=1.10",
                      "-p", f"out={out}", "-p", "tries=2")
    assert by_hand.returncode == 0, by_hand.stderr
    add(tmp_path, "flows.py:release", "--every", "1s", "-p", "version=1.10", "-p", f"out={out}",
        "-p", "tries=2")
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 1, 40, "a scheduled run")
        code, _ = terminate(proc)
    finally:
        stop(proc)
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(set(lines)) == 1, lines  # the scheduled runs got what the run by hand got
    assert lines[0] == repr(("1.10", 2))


def test_run_log_files_are_kept_their_days_then_deleted(tmp_path: Path) -> None:
    # One file per scheduled run, never deleted: a schedule every minute left 40,000 a month.
    write(tmp_path / "flows.py", FLOW)
    logs = tmp_path / "schedule-logs"
    logs.mkdir()
    old, recent, other = logs / "job-old.log", logs / "job-recent.log", logs / "notes.txt"
    for path, days in ((old, 8), (recent, 6), (other, 60)):
        path.write_text("a run's output\n")
        os.utime(path, (time.time() - days * 86400,) * 2)
    bad = labloom(tmp_path, "serve", LABLOOM_SCHEDULE_LOG_DAYS="a week")
    assert bad.returncode == 2 and "LABLOOM_SCHEDULE_LOG_DAYS must be a number of days" in (
        bad.stderr)
    add(tmp_path, "flows.py:job", "--every", "1s", "-p", f"out={tmp_path / 'out.txt'}")
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", LABLOOM_SCHEDULE_LOG_DAYS="7")
    try:
        wait_for(lambda: statuses(tmp_path).count("completed") >= 1, 40, "a scheduled run")
        wait_for(lambda: not old.exists(), 20, "the 8-day-old log deleted")
        code, _ = terminate(proc)
    finally:
        stop(proc)
    assert code == 0
    assert recent.exists() and other.exists()  # within its days; not a run's log
    runs = [p for p in logs.glob("*.log") if p not in (recent,)]
    assert runs and all(p.stat().st_size > 0 for p in runs)  # this serve's own runs' logs


def test_removing_a_schedule_whose_run_is_going_says_how_to_stop_it(tmp_path: Path) -> None:
    # `schedule remove` while its nightly run was going said only "removed": the run went on
    # (and alerted when it failed), which one who removed the schedule to stop it could not know.
    out = add_every_second_job(tmp_path, seconds=60)
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: [r for r in slot_rows(tmp_path) if r["status"] == "running"
                          and r["run_id"]], 40, "a running slot with its run")
        wait_for(lambda: out.exists() and "start" in out.read_text(), 30, "the run's task")
        [run_id] = [r["run_id"] for r in slot_rows(tmp_path) if r["status"] == "running"]
        removed = labloom(tmp_path, "schedule", "remove", "job")
        assert removed.returncode == 0, removed.stderr
        assert "removed schedule 'job'" in removed.stdout
        assert f"its run {run_id} is still going" in removed.stdout
        assert f"`labloom cancel {run_id}` stops it" in removed.stdout
        assert labloom(tmp_path, "cancel", str(run_id)).returncode == 0
        code, _ = terminate(proc, timeout=40)
        assert code == 0
    finally:
        stop(proc)


def test_a_failed_scheduled_run_retried_is_listed_with_its_retry(tmp_path: Path) -> None:
    # The nightly run failed; the operator fixed the cause and ran `labloom retry`. The
    # schedule went on listing "last failed", as if nothing had been done about it.
    write(tmp_path / "flows.py", """
        from pathlib import Path
        from labloom import flow, task

        @task(cache=True)
        def load():
            return 3

        @task
        def score(x):
            if not Path("fixed").exists():
                raise RuntimeError("not fixed yet")
            return x

        @flow
        def nightly():
            return score(load())
    """)
    add(tmp_path, "flows.py:nightly", "--every", "1s")
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: "failed" in statuses(tmp_path), 40, "a failed run")
        assert labloom(tmp_path, "schedule", "pause", "nightly").returncode == 0
        code, _ = terminate(proc)
        assert code == 0
    finally:
        stop(proc)
    last = [r for r in slot_rows(tmp_path) if r["status"] != "skipped"][-1]
    assert last["status"] == "failed" and last["run_id"]
    (tmp_path / "fixed").write_text("yes")
    retried = labloom(tmp_path, "retry", str(last["run_id"]))
    assert retried.returncode == 0, retried.stderr
    listing = labloom(tmp_path, "schedule", "list")
    [row] = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"]
    [retry] = row["last_run"]["retries"]
    assert retry["state"] == "Completed" and row["last_run"]["run_id"] == last["run_id"]
    assert f"last failed ({row['last_run']['slot']}), retried by run {retry['id']} (Completed)" \
        in listing.stdout
