"""The runs a call starts, as the engine's one registry of run observers sees them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import labloom
from labloom.core.observers import add_run_observer


@contextlib.contextmanager
def runs_started() -> Iterator[list[labloom.FlowRun]]:
    """The runs started inside the block (nested ones too), in the order they start; the
    observer is removed at the block's end, however it ends."""
    runs: list[labloom.FlowRun] = []
    remove = add_run_observer(runs.append)
    try:
        yield runs
    finally:
        remove()
