"""Helpers for store tests: run the real CLI and real scripts in fresh processes; ``wide``, a
flow of many cheap task runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labloom import ThreadExecutor, flow, task
from labloom.core.results import result_path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LABLOOM_") or k == "LABLOOM_DATABASE_URL"}
    env.update(PYTHONPATH=SRC, LABLOOM_HOME=str(home), LABLOOM_PROGRESS="0")
    env.update(extra)
    return env


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labloom", *args],
        env=env_for(home, **extra), capture_output=True, text=True, timeout=120,
    )


def cli_json(home: Path, *args: str, status: int = 0) -> Any:
    done = cli(home, *args, "--json")
    assert done.returncode == status, done.stderr
    return json.loads(done.stdout)


def run_script(
    home: Path, script: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args], env=env_for(home, **extra), capture_output=True,
        text=True, timeout=120,
    )


def peak(intervals: Sequence[Sequence[float]]) -> int:
    """How many (start, end) intervals overlapped at most: task runs at once under a limit."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = top = 0
    for _, step in edges:
        running += step
        top = max(top, running)
    return top


def age_results(run: Any, seconds: float) -> None:
    """Make ``run``'s saved results ``seconds`` older: expiration reads the result file's
    modification time, so this stands for the time passing without waiting for it."""
    for tr in run.tasks:
        path = result_path(tr.cache_key)
        saved = os.stat(path).st_mtime - seconds
        os.utime(path, (saved, saved))


@task
def one(x: int) -> int:
    return x


@flow
def wide(n: int) -> None:
    """``n`` no-op task runs of one map: what a store or memory test counts by the thousand."""
    one.map(range(n))


class ThreadsWithLimiter(ThreadExecutor):
    """Two task threads whose concurrency limits go through ``limiter`` (a test's own, or a
    store's), as an executor's own limiter does (Dask's)."""

    def __init__(self, limiter: Any) -> None:
        super().__init__(2)
        self._limiter = limiter

    def limiter(self, connect: bool = True) -> Any:  # as DaskExecutor.limiter
        return self._limiter
