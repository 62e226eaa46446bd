"""The run's own observer: ``@flow(on_failure=...)`` hooks, called off the run's thread."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from . import events as ev
from .states import State

log = logging.getLogger("labloom")


class FailureHooks:
    """Calls ``@flow(on_failure=...)`` hooks when the run fails; a hook that raises is logged."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        for event in batch:
            if isinstance(event, ev.RunFinished) and event.state in (State.FAILED, State.CRASHED):
                for hook in self.run.flow.on_failure:
                    try:
                        hook(self.run)
                    except Exception:
                        log.exception("[labloom] on_failure hook %r raised; the run is unaffected", hook)
