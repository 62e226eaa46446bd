"""Ended runs' experiment rows, kept between the pages of ``GET experiments`` (the compare
tab of several runs, ``experiments.across_page``).

A page across runs is sorted and filtered over every row of the runs named, so each question
needs them all; read from the store each time, a page across 50 runs of 350 children took
0.3-0.7 s (benchmarks/README.md, session 41), and a scroll through them asks a page per 200
rows. An ended run's rows no longer change (its calls are all in, its task runs' states
final), so they are read and folded once and kept here, keyed by the run's state and end as
the question's own read of the runs gives them: a run that goes on (marked Crashed, then
Running again on its next beat) or is retried in place is read afresh. Runs still going are
read at every question, as before. At most ``MAX_ROWS`` rows are kept, the runs asked least
recently dropped first; a run deleted through this server is dropped at once.

One run's own pages are kept elsewhere (``experiment_rows.py``, with a store snapshot); those
rows are followed by cursor while the run runs, these are only ever whole.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..core import experiments as ex
from ..store.experiments import rows_by_run
from ..store.reader import RunRecord, RunStore

MAX_ROWS = 200_000  # about 0.9 KB each (3 params, 3 metrics): some 180 MB at worst

_Key = tuple[str, str, float | None]  # run id, state, end


class AcrossRows:
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._kept: OrderedDict[_Key, list[ex.Experiment]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def rows(self, store: RunStore, records: list[RunRecord]) -> list[ex.Experiment]:
        """Every row of ``records``, in their order, each run's in the order logged."""
        with self._lock:
            kept = {key: self._kept[key] for key in map(_key, records) if key in self._kept}
        read = rows_by_run(store, [r for r in records if _key(r) not in kept])
        out: list[ex.Experiment] = []
        for record in records:
            key = _key(record)
            rows = kept[key] if key in kept else read[record.id]
            out += rows
            if not record.is_open:
                self._keep(key, rows)
        return out

    def forget(self, run_ids: list[str]) -> None:
        """Drop what is kept of these runs (deleted from the store: ``deleting.py``)."""
        gone = set(run_ids)
        with self._lock:
            for key in [key for key in self._kept if key[0] in gone]:
                self._count -= len(self._kept.pop(key))

    def _keep(self, key: _Key, rows: list[ex.Experiment]) -> None:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return
            if len(rows) > self._max_rows:
                return
            self._kept[key] = rows
            self._count += len(rows)
            while self._count > self._max_rows:
                _, dropped = self._kept.popitem(last=False)
                self._count -= len(dropped)


def _key(record: RunRecord) -> _Key:
    return (record.id, record.state, record.ended)
