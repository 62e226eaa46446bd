"""Fresh benchmark processes as after an install: compiled bytecode kept, not compiled inside
what they measure.

pip compiles a package's modules when it installs it, so a user's fresh process reads labloom's
bytecode. This machine sets ``PYTHONDONTWRITEBYTECODE`` and the source trees hold no
``__pycache__``, so without this every fresh child compiled labloom's modules during its first
run (the store's and the progress printer's: 12-15 ms of a fresh run, sessions 33-34). The
children share a temporary ``PYTHONPYCACHEPREFIX``, written by a first child per tree before
any is measured. The prefix mirrors each source file's absolute path, so two trees (main's
``src``, a worktree's) keep their bytecode apart; a stale file is recompiled anyway (Python
checks the source's modification time and size). Installed packages (distributed, numpy) are
compiled into the prefix too, by the same first child: with a prefix set, Python reads no
``__pycache__`` beside the sources.

Used by ``task_runs_scale.py`` (and the scripts built on its ``measure``),
``experiments_overhead.py``, ``dask_threads.py``, ``dask_overhead.py --no-warmup`` and
``dask_first_map.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def installed_env(pycache: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) for a child reading and writing its bytecode under
    ``pycache``. Dask's worker processes inherit it (and, the variable unset, get no ``-B``)."""
    out = dict(os.environ if env is None else env, PYTHONPYCACHEPREFIX=pycache)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def bytecode(trees: Iterable[T],
             write: Callable[[T, str], object]) -> tempfile.TemporaryDirectory[str]:
    """The children's bytecode folder (keep it while measuring): ``write(tree, folder)`` runs a
    first, unmeasured child on each tree, which compiles what the measured ones import."""
    pycache = tempfile.TemporaryDirectory(prefix="labloom-bench-pyc-")
    for tree in trees:
        write(tree, pycache.name)
    return pycache


def rerun_as_installed() -> int | None:
    """Run this script's command line again in a child with kept bytecode, after one
    unmeasured run of it that writes the bytecode; its exit code. ``None`` when this process
    already is such a child (``PYTHONPYCACHEPREFIX`` set): measure here."""
    if "PYTHONPYCACHEPREFIX" in os.environ:
        return None
    command = [sys.executable, *sys.argv]
    with bytecode([command], lambda cmd, folder: subprocess.run(
            cmd, env=installed_env(folder), check=True, capture_output=True)) as folder:
        return subprocess.run(command, env=installed_env(folder)).returncode
