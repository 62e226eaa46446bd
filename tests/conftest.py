"""Shared fixtures: every test gets its own LABLOOM_HOME, so the run store and the result
folder never touch the user's ``~/.labloom`` nor leak between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def labloom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "labloom-home"
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    yield home
