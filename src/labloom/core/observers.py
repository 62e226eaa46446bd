"""The run's own observer: ``@flow(on_failure=...)`` hooks, called off the run's thread."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

from . import events as ev
from .states import State

log = logging.getLogger("labloom")


class FailureHooks:
    """Calls ``@flow(on_failure=...)`` hooks when the run fails; a hook that raises is logged."""

    def __init__(self, run: Any) -> None:
        # Weakly: the bus holds this subscriber, and the run must not keep itself alive. The
        # run is held (by ``at_exit``) until its bus delivered the end, so a hook always has it.
        self._run = weakref.ref(run)

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        run = self._run()
        if run is None:
            return
        for event in batch:
            if isinstance(event, ev.RunFinished) and event.state in (State.FAILED, State.CRASHED):
                for hook in run.flow.on_failure:
                    try:
                        hook(run)
                    except Exception:
                        log.exception("[labloom] on_failure hook %r raised; the run is unaffected", hook)
