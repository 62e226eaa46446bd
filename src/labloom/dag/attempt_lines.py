"""Without terminal progress (``LABLOOM_PROGRESS=0``: cron jobs, ``labloom serve``'s runs, the
Flows panel's launches), a flow's failed attempt is said on stderr when it fails, and its next
attempt when it starts: the scheduler's log is what an on-call person reads, and a run waiting
600 s for its next attempt said nothing there until its end."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..core import events as ev
from ..core.flow_retries import RETRY_NOTE


class AttemptLines:
    def __init__(self, flow_name: str, stream: TextIO | None = None) -> None:
        self.flow_name = flow_name
        self.stream = stream
        self.said = ""  # a replay (a late subscriber) says the wait under way once

    def __call__(self, batch: list[ev.Event]) -> None:
        for event in batch:
            if not isinstance(event, ev.RunStateChanged) or not RETRY_NOTE.match(event.message):
                continue
            if event.message == self.said:
                continue
            self.said = event.message
            stream = self.stream or sys.stderr
            print(f"labloom: run {event.run_id} of flow {self.flow_name!r}: {event.message}",
                  file=stream, flush=True)


def attach(run: Any) -> AttemptLines:
    lines = AttemptLines(run.flow_name)
    run.subscribe(lines)
    return lines
