"""The one reader of labloom's number settings in the environment (core/env_numbers.py), and
each setting read through it: a value that is not one raises, naming the variable, the value
and what it must be (LABLOOM_DASHBOARD_PORT warned and used 8787 before, where the others
raised)."""

from __future__ import annotations

import pytest

from labloom import LabloomError
from labloom.core.env_numbers import env_number
from labloom.core.errors import ClusterConfigError, ScheduleError
from labloom.core.kept_parameters import parameter_bytes
from labloom.core.run_logs import run_line_limit
from labloom.executors.dask_dashboard import preferred_port
from labloom.executors.dask_keeping import recompute_wait
from labloom.schedule.alert_sender import timeout_from_env
from labloom.schedule.log_files import kept_days
from labloom.schedule.mail_alerts import read_relay
from labloom.store.postgres import Settings
from labloom.store.recorder import log_line_cap


def smtp_port() -> int:
    return read_relay().port


def db_connect_timeout() -> float:
    return Settings.read("postgresql").wait


def db_pool() -> int:
    return Settings.read("postgresql").pool


def test_unset_or_empty_is_the_default_and_a_number_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LABLOOM_TEST_NUMBER", raising=False)
    assert env_number("LABLOOM_TEST_NUMBER", 7.0, "a number", lambda n: True) == 7.0
    monkeypatch.setenv("LABLOOM_TEST_NUMBER", "  ")
    assert env_number("LABLOOM_TEST_NUMBER", 7.0, "a number", lambda n: True) == 7.0
    monkeypatch.setenv("LABLOOM_TEST_NUMBER", " 2.5 ")
    assert env_number("LABLOOM_TEST_NUMBER", 7.0, "a number", lambda n: True) == 2.5
    monkeypatch.setenv("LABLOOM_TEST_NUMBER", "1_000")
    read = env_number("LABLOOM_TEST_NUMBER", 7, "a whole number", lambda n: True, whole=True)
    assert read == 1000 and isinstance(read, int)


@pytest.mark.parametrize("text", ["soon", "nan", "-1", "inf"])
def test_a_bad_value_raises_naming_the_variable_the_value_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, text: str,
) -> None:
    monkeypatch.setenv("LABLOOM_TEST_NUMBER", text)
    with pytest.raises(ScheduleError) as raised:
        env_number("LABLOOM_TEST_NUMBER", 7.0, "a number of seconds >= 0",
                   lambda n: 0 <= n < float("inf"), ScheduleError, "how long to wait")
    assert str(raised.value) == (
        f"[labloom] LABLOOM_TEST_NUMBER must be a number of seconds >= 0 (how long to wait), "
        f"got {text!r}: set it to one, or unset it for the default (7)")


def test_a_whole_number_setting_refuses_a_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLOOM_TEST_NUMBER", "80.5")
    with pytest.raises(LabloomError, match=r"LABLOOM_TEST_NUMBER must be a port, got '80.5'"):
        env_number("LABLOOM_TEST_NUMBER", 1, "a port", lambda n: True, whole=True)


@pytest.mark.parametrize(("name", "read", "good", "bad", "error", "said"), [
    ("LABLOOM_DASHBOARD_PORT", preferred_port, ("8788", 8788), "70000", ClusterConfigError,
     "a port number from 0 to 65535 (the Dask dashboard's port; 0: any free one)"),
    ("LABLOOM_RECOMPUTE_WAIT", recompute_wait, ("0", 0.0), "-5", ClusterConfigError,
     "a number of seconds >= 0 (how long a run's end waits for Dask to make again a value "
     "lost with its worker)"),
    ("LABLOOM_NOTIFY_TIMEOUT", timeout_from_env, ("2.5", 2.5), "0", ScheduleError,
     "a number of seconds above 0 (how long a webhook has to answer an alert)"),
    ("LABLOOM_SCHEDULE_LOG_DAYS", kept_days, ("0", 0.0), "a week", ScheduleError,
     "a number of days >= 0 (0 keeps every run's log file)"),
    ("LABLOOM_PARAMETER_BYTES", parameter_bytes, ("10_000", 10_000), "1.5e6", LabloomError,
     "a whole number of bytes >= 0 (0 keeps every parameter as a summary)"),
    ("LABLOOM_RUN_LOG_LINES", run_line_limit, ("50", 50), "0", LabloomError,
     "a whole number >= 1 (log lines a run keeps in memory)"),
    ("LABLOOM_LOG_LINES", log_line_cap, ("0", 0), "-1", LabloomError,
     "a whole number >= 0 (log lines the store keeps per task run)"),
    ("LABLOOM_SMTP_PORT", smtp_port, ("2525", 2525), "smtp", ScheduleError,
     "a port number from 1 to 65535 (the SMTP relay's port)"),
    ("LABLOOM_DB_CONNECT_TIMEOUT", db_connect_timeout, ("1.5", 1.5), "0.1", LabloomError,
     "a number of seconds >= 0.5 (how long to wait for a PostgreSQL connection)"),
    ("LABLOOM_DB_POOL", db_pool, ("3", 3), "eight", LabloomError,
     "a whole number >= 1 (connections the store's pool may hold)"),
])
def test_each_setting_reads_through_it(
    monkeypatch: pytest.MonkeyPatch, name: str, read: object, good: tuple[str, float],
    bad: str, error: type[Exception], said: str,
) -> None:
    assert callable(read)
    monkeypatch.setenv(name, good[0])
    assert read() == good[1]
    monkeypatch.setenv(name, bad)
    with pytest.raises(error) as raised:
        read()
    assert str(raised.value).startswith(f"[labloom] {name} must be {said}, got {bad!r}: set it "
                                        "to one, or unset it for the default ("), raised.value
