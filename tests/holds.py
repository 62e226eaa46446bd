"""A task held until the test lets it go: a file the test makes (a Dask worker is another
process), polled.

A task that must still run when its timeout (or its run's) fires is held by such a gate, which
the test opens once it saw that timeout recorded, not by a sleep a few seconds longer than the
timeout: on a loaded machine a ``time.sleep(3)`` under ``timeout=1`` can end before the
timeout fires. Python cannot stop the given-up call's thread: opening the gate lets it go."""

from __future__ import annotations

import os
import time


def held_until(gate: str, never: str, guard: float = 120.0) -> None:
    """Returns once the test made ``gate``; past ``guard`` seconds, TimeoutError saying what
    ``never`` happened."""
    deadline = time.monotonic() + guard
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(never)
        time.sleep(0.02)
