"""Shared fixtures: every test gets its own LABLOOM_HOME, so the run store and the result
folder never touch the user's ``~/.labloom`` nor leak between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def labloom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own state folder; nothing touches ~/.labloom."""
    home = tmp_path / "labloom-home"
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    yield home  # limits live in this store too, so they end with the test


@pytest.fixture
def subprocess_env(labloom_home: Path) -> dict[str, str]:
    """Environment for a child process that imports this checkout's labloom."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH", "")]))
    env["LABLOOM_HOME"] = str(labloom_home)
    return env


@pytest.fixture(params=["local", "threads"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)
