"""Shared fixtures: every test gets its own LABLOOM_HOME, so the run store and the result
folder never touch the user's ``~/.labloom`` nor leak between tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from system_programs import require_program

SRC = Path(__file__).resolve().parents[1] / "src"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(program): skip without this system program (fail in CI); see system_programs"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require_program(*mark.args)


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


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch, labloom_home: Path) -> Iterator[Any]:
    """A real IPython shell with labloom loaded; widgets off, threads by default."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    for name in ("LABLOOM_EXECUTOR", "LABLOOM_ADDRESS", "LABLOOM_WIDGET"):
        monkeypatch.delenv(name, raising=False)
    real_main = sys.modules["__main__"]
    shell = InteractiveShell.instance()
    # The shell installs its own __main__, which lacks __spec__; Dask's worker processes are
    # spawned, and spawning reads __main__.__spec__.
    if not hasattr(sys.modules["__main__"], "__spec__"):
        sys.modules["__main__"].__spec__ = None
    shell.run_line_magic("load_ext", "labloom")
    shell.run_line_magic("config", "Labloom.widget = False")
    shell.run_line_magic("config", "Labloom.executor = 'threads'")
    yield shell
    shell.reset(new_session=False)
    sys.modules["__main__"] = real_main
