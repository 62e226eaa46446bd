"""`labloom schedule ...` through the real command line: refused early, listed, changed."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import labloom, write

FLOW = """
    from labloom import flow, task

    @task
    def add(x, y):
        return x + y

    @flow
    def nightly(day: str, n: int = 1):
        return add(n, 1)
"""
SECRET = "https://hooks.example.com/services/T000/B000/very-secret-token"


def test_add_list_pause_resume_remove(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, "schedule", "add", "flows.py:nightly", "--cron", "0 2 * * *",
                  "--timezone", "Europe/Paris", "-p", "day=today", "--notify", SECRET)
    assert out.returncode == 0, out.stderr
    assert "added schedule 'nightly'" in out.stdout and "+01:00" in out.stdout
    assert "very-secret-token" not in out.stdout + out.stderr
    assert "no scheduler is running" in out.stdout
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--every", "1h30m", "--name", "often",
                  "-p", "day=x", "-p", "n=3", "--catchup", "skip", "--executor", "threads")
    assert out.returncode == 0, out.stderr

    listing = labloom(tmp_path, "schedule", "list")
    assert listing.returncode == 0
    assert "nightly:" in listing.stdout and "often:" in listing.stdout
    assert "every 1h30m" in listing.stdout and "cron 0 2 * * * (Europe/Paris)" in listing.stdout
    assert "T02:00:00+01:00" in listing.stdout
    assert "scheduler: not running" in listing.stdout
    assert "very-secret-token" not in listing.stdout
    assert "https://hooks.example.com/***" in listing.stdout

    data = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
    assert "very-secret-token" not in json.dumps(data)
    by_name = {s["name"]: s for s in data["schedules"]}
    assert by_name["often"]["every"] == 5400 and by_name["often"]["catchup"] == "skip"
    assert by_name["nightly"]["next_run"].endswith("T02:00:00+01:00")
    assert data["scheduler"] == {"running": False, "schedulers": []}

    assert labloom(tmp_path, "schedule", "pause", "often").returncode == 0
    data = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)
    assert {s["name"]: s["paused"] for s in data["schedules"]} == {"nightly": False, "often": True}
    assert "PAUSED" in labloom(tmp_path, "schedule", "list").stdout
    assert labloom(tmp_path, "schedule", "resume", "often").returncode == 0
    assert labloom(tmp_path, "schedule", "remove", "often").returncode == 0
    out = labloom(tmp_path, "schedule", "remove", "often")
    assert out.returncode == 2
    assert "no schedule named 'often'; the schedules are nightly" in out.stderr


def test_bad_schedules_are_refused_when_added(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)

    def refused(*args: str) -> str:
        out = labloom(tmp_path, "schedule", "add", *args)
        assert out.returncode == 2, out.stdout
        assert "Traceback" not in out.stderr
        return out.stderr

    assert "bad cron expression" in refused("flows.py", "--cron", "61 2 * * *", "-p", "day=x")
    assert "bad duration" in refused("flows.py", "--every", "soon", "-p", "day=x")
    # the Flows panel's buttons address a schedule by name in a URL: no path-like names
    for name in ("../../x", "a/b", "..", "tab\there"):
        err = refused("flows.py", "--every", "1h", "-p", "day=x", "--name", name)
        assert f"bad schedule name {name!r}" in err and "choose another with --name" in err
    assert "unknown timezone" in refused("flows.py", "--cron", "0 2 * * *", "--timezone",
                                         "Atlantis/Capital", "-p", "day=x")
    assert "no such file" in refused("gone.py", "--every", "1h")
    assert "no flow 'other'" in refused("flows.py:other", "--every", "1h")
    assert "missing parameter(s) day" in refused("flows.py", "--every", "1h")
    assert "unknown parameter(s) colour" in refused("flows.py", "--every", "1h", "-p", "day=x",
                                                    "-p", "colour=red")
    assert "unknown executor" in refused("flows.py", "--every", "1h", "-p", "day=x",
                                         "--executor", "spark")
    err = refused("flows.py", "--every", "1h", "-p", "day=x", "--notify", "not a url")
    assert "webhook URL" in err
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--every", "1h", "--cron", "* * * * *")
    assert out.returncode == 2 and "not allowed with" in out.stderr
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []


def test_a_folder_that_is_not_utf8_is_refused_and_odd_parameters_are_kept(
    tmp_path: Path, labloom_home: Path
) -> None:
    # os.getcwd() of a folder named b"caf\xe9" holds a lone surrogate: the store cannot keep it
    # exactly, and a schedule must find its file again, so it is refused in one line.
    folder = tmp_path / b"caf\xe9".decode("utf-8", "surrogateescape")
    write(folder / "flows.py", FLOW)
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--every", "1h", "-p", "day=x",
                  cwd=folder)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "not UTF-8" in out.stderr, out.stderr
    # A parameter value with such bytes travels as JSON and comes back exactly.
    odd = b"caf\xe9.csv".decode("utf-8", "surrogateescape")
    write(tmp_path / "flows.py", FLOW)
    added = labloom(labloom_home, "schedule", "add", "flows.py", "--every", "1h", "-p",
                    f"day={odd}", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    from labloom.schedule import stored_schedules

    with stored_schedules.store() as conn:
        assert stored_schedules.get(conn, "nightly").params == {"day": odd}


def test_duplicate_name(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    assert labloom(tmp_path, "schedule", "add", "flows.py", "--every", "1h",
                   "-p", "day=x").returncode == 0
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--every", "2h", "-p", "day=y")
    assert out.returncode == 2 and "a schedule named 'nightly' exists" in out.stderr


def test_a_notebook_can_be_scheduled(tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell("%%tasks\ndef double(x):\n    return 2 * x"),
             new_code_cell("n = 4"), new_code_cell("%%flow twice -p n\nresult = double(n)")]
    nbformat.write(new_notebook(cells=cells), str(tmp_path / "nb.ipynb"))
    out = labloom(tmp_path, "schedule", "add", "nb.ipynb", "--every", "1d", "-p", "n=2")
    assert out.returncode == 0, out.stderr
    assert f"{tmp_path / 'nb.ipynb'}:twice" in out.stdout
    out = labloom(tmp_path, "schedule", "add", "nb.ipynb", "--every", "1d", "-p", "m=2",
                  "--name", "other")
    assert out.returncode == 2 and "unknown parameter(s) m" in out.stderr


def test_a_six_field_cron_is_refused_not_read_as_seconds(tmp_path: Path) -> None:
    # Quartz and Spring put seconds first: "0 0 2 * * *" means 2 a.m. there. croniter reads a
    # sixth field as seconds at the end, so this was stored as "every second of 00:00 on the
    # 2nd of each month": never at 2 a.m., and a burst of slots once a month.
    write(tmp_path / "flows.py", FLOW)
    for expr in ("0 0 2 * * *", "0 2 * * * 0"):
        out = labloom(tmp_path, "schedule", "add", "flows.py", "--cron", expr, "-p", "day=x")
        assert out.returncode == 2, out.stdout
        assert "Traceback" not in out.stderr
        assert f"bad cron expression {expr!r}" in out.stderr and "five fields" in out.stderr
        assert "seconds" in out.stderr
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--cron", "@daily", "-p", "day=x")
    assert out.returncode == 0, out.stderr  # croniter's named shorthands stay accepted


def test_a_cron_without_timezone_follows_the_tz_variable(tmp_path: Path) -> None:
    # Containers and servers set the local zone with TZ (the Debian/Docker way); `date` and
    # cron follow it. The schedule's "local" zone came from /etc/localtime alone, so with
    # TZ=America/New_York on a UTC image a 2 a.m. job ran at 9 p.m. New York time.
    write(tmp_path / "flows.py", FLOW)
    for tz, name in ((":America/New_York", "colon"), ("America/New_York", "plain")):
        out = labloom(tmp_path, "schedule", "add", "flows.py", "--cron", "0 2 * * *",
                      "--name", name, "-p", "day=x", TZ=tz)
        assert out.returncode == 0, out.stderr
        assert "(America/New_York)" in out.stdout and "T02:00:00-05:00" in out.stdout, out.stdout
    rows = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"]
    assert {r["timezone"] for r in rows} == {"America/New_York"}


def test_a_flow_taking_keyword_arguments_can_be_scheduled(tmp_path: Path) -> None:
    # `labloom run` takes extra --param items for a flow with **options; schedule add
    # stopped with a KeyError traceback looking each given name up among the named ones.
    write(tmp_path / "kw.py", """
        from labloom import flow

        @flow
        def tuned(model: str, **options):
            return options
    """)
    assert labloom(tmp_path, "run", "kw.py:tuned", "-p", "model=m", "-p", "depth=3",
                   "-p", "tag=1.10").returncode == 0
    out = labloom(tmp_path, "schedule", "add", "kw.py:tuned", "--every", "1h", "-p", "model=m",
                  "-p", "depth=3", "-p", "tag=1.10")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_a_timezone_with_every_is_refused_naming_cron(tmp_path: Path) -> None:
    # `--every 1d --timezone Europe/Berlin` was taken and the zone ignored: an interval counts
    # exact time, so the "daily at 17:00 Berlin" run moved to 18:00 at the spring change.
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, "schedule", "add", "flows.py", "--every", "1d", "--timezone",
                  "Europe/Berlin", "-p", "day=x")
    assert out.returncode == 2, out.stdout
    assert "Traceback" not in out.stderr
    assert "--timezone" in out.stderr and "--cron" in out.stderr
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []


def test_an_empty_or_broken_value_is_refused_when_added_not_taken_as_left_out(
    tmp_path: Path,
) -> None:
    # `--notify "$SLACK_URL"` in a cron line or a unit file where the variable is not set: the
    # empty value was read as no --notify, and the schedule's failures alerted nobody. An empty
    # --cron made a schedule of neither kind (a traceback), and a URL that no request can carry
    # (a space from a wrapped line, a port past 65535) was stored, to fail at the first alert.
    write(tmp_path / "flows.py", FLOW)

    def refused(*args: str) -> str:
        out = labloom(tmp_path, "schedule", "add", "flows.py", "-p", "day=x", *args)
        assert out.returncode == 2, out.stdout
        assert "Traceback" not in out.stderr
        assert "very-secret-token" not in out.stderr
        return out.stderr

    assert "--notify is empty" in refused("--every", "1h", "--notify", "")
    assert "--notify is empty" in refused("--every", "1h", "--notify", "  ")
    assert "bad cron expression ''" in refused("--cron", "")
    assert "bad duration ''" in refused("--every", "")
    assert "unknown timezone ''" in refused("--cron", "0 2 * * *", "--timezone", "")
    wrapped = SECRET.replace("/B000/", "/B000/ ")
    for broken in (wrapped, SECRET + "\n"):
        assert "space, line break or control character" in refused("--every", "1h",
                                                                  "--notify", broken)
    for unreachable in ("https://hooks.example.com:99999/very-secret-token",
                        "http://[::1/very-secret-token"):
        err = refused("--every", "1h", "--notify", unreachable)
        assert "--notify has a host or port" in err
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []
    out = labloom(tmp_path, "run", "flows.py", "-p", "day=x", "--notify", "")
    assert out.returncode == 2 and "--notify is empty" in out.stderr
