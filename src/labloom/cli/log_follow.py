"""`labloom logs RUN --follow`: a run's lines as they are written, until it ends (as
`tail -f` or `kubectl logs -f`): a CLI or scheduled run watched from a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..store import open_store
from ..store.follow import task_runs_by_id
from ..store.log_records import LogEntry
from ..store.named_logs import named_lines_after
from .terminal import echo, log_line

LOOK_EVERY = 0.5  # seconds between reads of a run still going
_PAGE = 1000
_ENDED = ("Completed", "Failed", "Cancelled", "Crashed")


def follow(run_id: str, task: str | None, as_json: bool,
           say: Callable[[LogEntry, str], None] | None = None) -> Any:
    """Print the run's lines (of task runs matching ``task``) from the first on, then each new
    one, until the run has ended and its last lines are read; returns its record then."""
    say = say or (_json_line if as_json else _text_line)
    names: dict[str, str] = {}
    after = 0
    with open_store() as store:
        while True:
            # Its state (Crashed too, once its process is gone), not its task runs counted:
            # read every half second, a count would read a map's 100,000 rows each time.
            found = store.matching_runs(run_id, limit=1, parameters=False)
            run = found[0] if found and found[0].id == run_id else None
            ended = run is None or run.state in _ENDED
            while True:  # every line written so far, a page at a time
                if task is not None:  # the named task runs' lines, filtered in SQL, all new
                    lines = named_lines_after(store.conn, run_id, task, after)
                else:
                    lines = store.log_page(run_id, None, after, _PAGE)
                    _add_names(store, names, lines)
                for line in lines:
                    say(line, line.task or names.get(line.task_run_id or "", ""))
                after = lines[-1].id if lines else after
                if task is not None or len(lines) < _PAGE:
                    break
            if ended:  # read after the end was seen: its last lines are in
                return run
            time.sleep(LOOK_EVERY)


def _add_names(store: Any, names: dict[str, str], lines: list[LogEntry]) -> None:
    """The names of the task runs of ``lines`` not seen yet, by their primary keys."""
    new = {line.task_run_id for line in lines if line.task_run_id and line.task_run_id not in names}
    if new:
        names.update((tr_id, tr.name) for tr_id, tr in task_runs_by_id(store, sorted(new)).items())


def _text_line(line: LogEntry, name: str) -> None:
    echo(log_line(line.time, line.level, name, line.text))


def _json_line(line: LogEntry, name: str) -> None:
    print(json.dumps({**line.to_json(), "task": name}), flush=True)
