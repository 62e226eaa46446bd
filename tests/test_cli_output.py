"""What `labloom` prints: a closed pipe ends it quietly; log text cannot drive the terminal."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import cli_env, labloom, write
from labloom.core import events as ev
from labloom.core.states import State
from labloom.dag.console_progress import ConsoleProgress

CHATTY = """
    from labloom import flow, task

    @task
    def chatty(i):
        for k in range(3):
            print(f"line {k} of {i} " + "x" * 60)

    @flow
    def talk(n: int = 2000):
        chatty.map(range(n))  # show and logs both print far more than a pipe buffer holds
"""


@pytest.fixture
def chatty_run(tmp_path: Path) -> tuple[Path, str]:
    write(tmp_path / "flows.py", CHATTY)
    done = labloom(tmp_path, "run", "flows.py:talk", LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    [run_id] = [line.split()[0] for line in labloom(tmp_path, "runs").stdout.splitlines()[1:]]
    return tmp_path, run_id


@pytest.mark.parametrize("command", ["logs", "show"])
def test_a_closed_pipe_ends_the_command_quietly(chatty_run: tuple[Path, str], command: str) -> None:
    home, run_id = chatty_run
    args = [command, run_id]
    # `labloom logs RUN | head -1`: the reader takes one line and goes away.
    proc = subprocess.Popen([sys.executable, "-m", "labloom", *args], env=cli_env(home),
                            cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first
    assert err == "", err  # no BrokenPipeError, no "Exception ignored"
    assert proc.returncode == 141  # 128 + SIGPIPE, as `seq 1 1000000 | head -1` leaves seq


HOSTILE = """
    from labloom import flow, task

    TEXT = "title\\x1b]0;pwned\\x07 clear\\x1b[2J nul\\x00 cr\\rhidden bidi\\u202eevil tab\\tok"

    @task(name="sneaky\\x1b[31m")
    def sneaky():
        print(TEXT)
        raise ValueError(TEXT)

    @flow
    def hostile():
        sneaky()
"""
RAW = "title\x1b]0;pwned\x07 clear\x1b[2J nul\x00 cr\rhidden bidi\u202eevil tab\tok"
SHOWN = "title\\x1b]0;pwned\\x07 clear\\x1b[2J nul\\x00 cr\\x0dhidden bidi\\u202eevil tab\tok"
DRIVERS = ["\x1b", "\x00", "\x07", "\r", "\u202e"]


def test_log_text_cannot_drive_the_terminal_but_json_keeps_it(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", HOSTILE)
    assert labloom(tmp_path, "run", "flows.py:hostile", LABLOOM_PROGRESS="0").returncode == 1
    run_id = json.loads(labloom(tmp_path, "runs", "--json").stdout)[0]["id"]
    for command in (["logs", run_id], ["show", run_id], ["runs"]):
        text = labloom(tmp_path, *command).stdout
        assert not [c for c in DRIVERS if c in text], (command, text)
    logs = labloom(tmp_path, "logs", run_id).stdout
    # The printed line is recorded as a terminal shows it, what follows its carriage return
    # (a progress bar's refreshes write over each other); the exception keeps every character.
    assert "sneaky\\x1b[31m | hidden bidi\\u202eevil tab\tok" in logs
    show = labloom(tmp_path, "show", run_id).stdout
    assert SHOWN in show and "\\x1b[31m" in show  # the message; the task run's name
    # --json: exactly as recorded; NUL alone is stored escaped (PostgreSQL refuses it in
    # text, so both backends keep `\x00`, and the run's log says so).
    stored = RAW.replace("\x00", "\\x00")
    lines = json.loads(labloom(tmp_path, "logs", run_id, "--json").stdout)["lines"]
    assert RAW.rsplit("\r", 1)[1] in [line["text"] for line in lines]
    assert any("backslash-escaped" in line["text"] for line in lines)
    shown = json.loads(labloom(tmp_path, "show", run_id, "--json").stdout)
    assert stored in shown["task_runs"][0]["message"]


def test_progress_and_tables_show_names_and_messages_escaped(tmp_path: Path) -> None:
    # The progress of `labloom run` wrote a task's name and its exception's message raw to
    # stderr: the window retitled (ESC ]0;), the screen cleared, U+202E reading the rest
    # backwards; every other view escaped them. Tables took their widths before escaping.
    write(tmp_path / "flows.py", HOSTILE.replace('name="sneaky\\x1b[31m"',
                                                 'name="sneaky\\x1b[31m\\u202eX"'))
    done = labloom(tmp_path, "run", "flows.py:hostile", LABLOOM_PROGRESS="1")
    assert done.returncode == 1 and "Failed    sneaky" in done.stderr, done.stderr
    assert not [c for c in DRIVERS if c in done.stderr], done.stderr
    assert "Failed    sneaky\\x1b[31m\\u202eX: ValueError: title\\x1b]0;pwned" in done.stderr
    # The task's print goes to stdout as a terminal shows it (what follows its carriage
    # return), its own text kept, as a script's, after its name, escaped: U+202E there read
    # the line backwards.
    assert done.stdout == "sneaky\\x1b[31m\\u202eX | hidden bidi\u202eevil tab\tok\n", done.stdout
    run_id = json.loads(labloom(tmp_path, "runs", "--json").stdout)[0]["id"]
    lines = labloom(tmp_path, "show", run_id).stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TASK RUN"))
    row = lines[header + 1]
    assert row.startswith("sneaky\\x1b[31m\\u202eX  Failed"), row
    assert lines[header].index("STATE") == row.index("Failed"), lines[header : header + 2]


def test_the_live_progress_table_shows_names_escaped() -> None:
    # On a terminal the table is redrawn: its own cursor moves are the only ESC it writes.
    out = io.StringIO()
    progress = ConsoleProgress(out, live=True)
    name = "odd\u202e-name\x1b]0;pwned\x07"
    progress([ev.NodeCreated("r", "n", name, "map", (), 1.0),
              ev.TaskRunCreated("r", "r.0", "n", name, 0, (), 1.0),
              ev.StateChanged("r", "r.0", State.FAILED, 2.0, "boom\u202e\x1b[2J"),
              ev.RunFinished("r", State.FAILED, 3.0, "first: boom\u202e\x1b[2J")])
    text = re.sub(r"\x1b\[\d+F\x1b\[J", "", out.getvalue())
    assert not [c for c in DRIVERS if c in text], text
    assert "odd\\u202e-name\\x1b]0;pwned\\x07 [" in text and "boom\\u202e\\x1b[2J" in text


SQUARES = """
    from labloom import flow, task

    @task
    def square(i):
        for k in range(20):
            print("squaring", i, "step", k)
        return i * i

    @flow(executor="threads")
    def squares(n: int = 200):
        return square.map(range(n))
"""
SQUARE_LINE = re.compile(r"square\[(\d+)\] \| squaring (\d+) step (\d+)")


def test_concurrent_prints_are_whole_prefixed_lines_and_progress_is_on_stderr(
    tmp_path: Path,
) -> None:
    write(tmp_path / "flows.py", SQUARES)
    out = labloom(tmp_path, "run", "flows.py:squares", PYTHONUNBUFFERED="1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 200 * 20
    for line in lines:  # only the flow's prints, each whole: never "squaring 1squaring 2"
        match = SQUARE_LINE.fullmatch(line)
        assert match and match.group(1) == match.group(2), line
    assert "labloom" not in out.stdout
    assert "labloom: flow 'squares' run" in out.stderr and "Completed" in out.stderr
    # One stream, as on a terminal: the start line comes before any task's print.
    merged = subprocess.run(
        [sys.executable, "-m", "labloom", "run", "flows.py:squares"], cwd=tmp_path,
        env=cli_env(tmp_path, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120,
    ).stdout.splitlines()
    assert merged[0].startswith("labloom: flow 'squares' run"), merged[:3]


FAILING = """
    from labloom import flow, task

    @task
    def load(n):
        print("loading", n)
        return list(range(n))

    @task
    def train(rows):
        print("training on", len(rows))
        return divide(len(rows))

    def divide(n):
        return n / 0

    @flow
    def pipeline():
        train(load(3))
"""


def test_a_failed_tasks_traceback_is_in_show_and_ends_its_logs(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FAILING)
    assert labloom(tmp_path, "run", "flows.py:pipeline", LABLOOM_PROGRESS="0").returncode == 1
    run_id = json.loads(labloom(tmp_path, "runs", "--json").stdout)[0]["id"]
    shown = labloom(tmp_path, "show", run_id).stdout
    table, _, below = shown.partition("train Failed, attempt 1:")
    assert "train" in table and below, shown  # under the task runs
    assert "Traceback (most recent call last):" in below and "in divide" in below
    assert below.rstrip().endswith("ZeroDivisionError: division by zero")
    logs = labloom(tmp_path, "logs", run_id, "--task", "train").stdout.rstrip().splitlines()
    assert "training on 3" in logs[0]
    assert logs[-1].strip() == "ZeroDivisionError: division by zero"
    assert "loading" not in "\n".join(logs)  # another task's lines and traceback stay out
    data = json.loads(labloom(tmp_path, "logs", run_id, "--task", "train", "--json").stdout)
    assert data["tracebacks"][0]["task"] == "train"
    assert "ZeroDivisionError" in data["tracebacks"][0]["traceback"]
    assert "Traceback" not in labloom(tmp_path, "logs", run_id, "--task", "load").stdout


def test_a_task_name_that_names_no_task_run_is_said_with_the_names_there_are(
    tmp_path: Path,
) -> None:
    # A typo in --task printed "no log lines for task 'trian'" and exit status 0, as if the
    # task had run and said nothing (session 46).
    write(tmp_path / "flows.py", FAILING)
    assert labloom(tmp_path, "run", "flows.py:pipeline", LABLOOM_PROGRESS="0").returncode == 1
    run_id = json.loads(labloom(tmp_path, "runs", "--json").stdout)[0]["id"]
    for args in (["--task", "trian"], ["--task", "train[3]"], ["--task", "trian", "--json"],
                 ["--task", "trian", "--follow"]):
        out = labloom(tmp_path, "logs", run_id, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr == (f"labloom: error: run {run_id} has no task run {args[1]!r}; its "
                              "tasks: load, train (NAME[i] names a map's child, `labloom show "
                              "RUN_ID` lists them all)\n"), out.stderr
    assert labloom(tmp_path, "logs", run_id, "--task", "load").returncode == 0


def test_a_limits_tag_is_printed_escaped(tmp_path: Path) -> None:
    # `limit set/list/remove` printed the tag raw: a byte that is not UTF-8 (a lone surrogate
    # in argv) was a UnicodeEncodeError traceback on a UTF-8 terminal, after the limit was
    # set; an escape sequence in it drove the terminal (session 46).
    tag = "gpu\udcff\x1b[2J"
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    for args, said in ((["set", tag, "2"], "limit gpu\\udcff\\x1b[2J: 2\n"),
                       (["list"], "gpu\\udcff\\x1b[2J      2        0\n"),
                       (["remove", tag], "limit gpu\\udcff\\x1b[2J deleted\n")):
        out = labloom(tmp_path, "limit", *args, **strict)
        assert out.returncode == 0, out.stderr
        assert out.stdout.endswith(said) and "\x1b" not in out.stdout, out.stdout


FULL_DISK = """
    from labloom import flow, task

    @task
    def extract():
        print("extracting")
        return 3

    @task
    def loud(x):
        for i in range(50):
            print(f"line {i}")
        return x

    @flow
    def nightly(fail: bool = False):
        out = loud(extract())
        if fail:  # once loud has printed: the body's failure then cancels nothing
            out.result()
            raise ValueError("the body failed")
        return out
"""


@pytest.mark.parametrize("fail", [False, True])
def test_output_to_a_full_disk_fails_no_task_and_keeps_the_report(
    tmp_path: Path, fail: bool
) -> None:
    # `labloom serve` sends a run's stdout and stderr to a file in labloom's home. With that
    # disk full, each task that printed failed with "No space left on device" (its lines were
    # in the store already: only their copy to the file failed), and the progress line's write
    # ended the run process as "cannot reach the executor" before its report: serve recorded
    # a run that completed as crashed, with no run id. /dev/full is that disk.
    write(tmp_path / "flows.py", FULL_DISK)
    report = tmp_path / "report.json"
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "labloom", "run", "flows.py:nightly", "-p",
             f"fail={json.dumps(fail)}", "--origin", "schedule", "--report", str(report)],
            env=cli_env(tmp_path), cwd=tmp_path, stdout=full, stderr=full, timeout=120,
        )
    assert done.returncode == (1 if fail else 0)
    said = json.loads(report.read_text())
    assert said["state"] == ("Failed" if fail else "Completed")
    assert said["failed_tasks"] == [] and said["unrecorded"] == 0
    logs = labloom(tmp_path, "logs", said["run_id"], "--json")
    assert logs.returncode == 0, logs.stderr
    lines = [line["text"] for line in json.loads(logs.stdout)["lines"]]
    assert [t for t in lines if t.startswith("line ")] == [f"line {i}" for i in range(50)]
    assert "extracting" in lines
    warned = [t for t in lines if "could not also be written to the process's stdout" in t]
    assert len(warned) == 1 and "No space left on device" in warned[0]


LOUD = """
    from labloom import flow, task

    @task
    def first():
        return 1

    @task
    def loud(x):
        for i in range(400):
            print(f"line {i} " + "x" * 9000)  # 3.6 MB of lines: past the store's room
        return x

    @task
    def after(x):
        return x

    @flow
    def nightly():
        return after(loud(first()))
"""


def test_a_store_without_room_for_a_runs_lines_keeps_its_states(tmp_path: Path) -> None:
    # The store's disk filled up under a task printing much (a tmpfs, a quota; here a file
    # size limit, which SQLite meets the same way). The batch holding those lines never fit,
    # and tried again whole it held the run's later states behind it: the run that completed
    # was left Crashed, or was not in the store at all. Now its states are kept and the lines
    # that found no room are dropped, counted and said (exit status 3).
    import resource

    write(tmp_path / "flows.py", LOUD)
    assert labloom(tmp_path, "runs").returncode == 0  # the store made, within the limit
    room = (tmp_path / "labloom.db").stat().st_size + 400_000

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.getrlimit(
            resource.RLIMIT_FSIZE)[1]))

    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "labloom", "run", "flows.py:nightly", "--report", str(report)],
        env=cli_env(tmp_path, LABLOOM_PROGRESS="0"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limited,
    )
    assert done.returncode == 3, done.stderr
    said = json.loads(report.read_text())
    assert said["state"] == "Completed" and said["unrecorded"] > 0
    assert f"missing {said['unrecorded']} record(s) of run {said['run_id']}" in done.stderr
    shown = json.loads(labloom(tmp_path, "show", said["run_id"], "--json").stdout)
    assert shown["state"] == "Completed"
    assert {t["name"]: t["state"] for t in shown["task_runs"]} == {
        "first": "Completed", "loud": "Completed", "after": "Completed"}
