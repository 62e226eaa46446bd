"""The store's number settings (store/settings.py) through the real CLI, on both backends: a
bad one stops `labloom run` with one line naming the variable, its value and the fix, before
the flow runs or anything is recorded. They are read once as the store opens, in the
command's thread, and handed to the writer's threads, which read nothing. Before, a bad value
fell back to its default in silence (they were read in the writer's threads, where raising
would lose records): the flow ran with a setting the user never chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import labloom, write
from labloom.store.settings import StoreSettings
from test_env_numbers_cli import FLOW


@pytest.mark.parametrize(("name", "bad", "said"), [
    ("LABLOOM_STORE_OUTAGE", "ten minutes",
     "a number of seconds >= 0 (how long the writer retries what it cannot write)"),
    ("LABLOOM_STORE_BACKLOG", "0", "a whole number >= 1 (events that may wait in memory "
     "while the store cannot be written)"),
    ("LABLOOM_STORE_RESERVE", "-1", "a number of MB >= 0 (0: none) (room kept free on the "
     "store's disk for the runs' states)"),
    ("LABLOOM_HEARTBEAT_TIMEOUT", "1m", "a number of seconds above 0 (how long without a "
     "heartbeat a run counts as crashed)"),
    ("LABLOOM_STORE_EXIT_WAIT", "a while", "a number of seconds >= 0 (how long a process "
     "waits at its exit for a store that is away)"),
])
def test_a_bad_store_setting_stops_labloom_run_before_anything_is_recorded(
    store_backend: str, tmp_path: Path, name: str, bad: str, said: str,
) -> None:
    write(tmp_path / "chores.py", FLOW)
    done = labloom(tmp_path, "run", "chores.py:chore", LABLOOM_PROGRESS="0", **{name: bad})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{name} must be {said}, got {bad!r}: set it to one, or unset it" in done.stderr, \
        done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()  # the flow did not run
    listed = labloom(tmp_path, "runs", "--json")  # nor was a run recorded
    assert listed.returncode == 0 and "chore" not in listed.stdout, listed


def test_good_store_settings_reach_the_writer(tmp_path: Path) -> None:
    # The values checked as the store opened are the ones its threads use: 0 MB means no
    # reserve beside the SQLite file (the writer's disk room reads the checked value).
    write(tmp_path / "chores.py", FLOW)
    done = labloom(tmp_path, "run", "chores.py:chore", LABLOOM_PROGRESS="0",
                   LABLOOM_STORE_RESERVE="0", LABLOOM_STORE_OUTAGE="30",
                   LABLOOM_STORE_BACKLOG="1_000", LABLOOM_HEARTBEAT_TIMEOUT="12")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").exists()
    assert not list(tmp_path.rglob("*-reserve"))


def test_the_exit_wait_is_the_setting_or_the_store_s_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unset: a server gets longer than a SQLite file (one restarting, one locked).
    monkeypatch.delenv("LABLOOM_STORE_EXIT_WAIT", raising=False)
    unset = StoreSettings.read()
    assert (unset.exit_seconds("sqlite"), unset.exit_seconds("postgresql")) == (5.0, 15.0)
    monkeypatch.setenv("LABLOOM_STORE_EXIT_WAIT", "0")  # exits at once, on either store
    given = StoreSettings.read()
    assert (given.exit_seconds("sqlite"), given.exit_seconds("postgresql")) == (0.0, 0.0)
