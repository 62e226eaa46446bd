"""How many map children share one Dask task, when the task leaves it to labloom (the default,
``batch_size="auto"``; ``batch_size=N`` fixes it, ``batch_size=1`` turns chunking off).

Dask costs about a millisecond of scheduling per task: nothing next to a 0.4 s experiment,
most of the time of a task that takes microseconds. So a chunk gets as many children as take
about ``CHUNK_SECONDS``, from the durations measured on the cluster so far (per task name,
shared by the runs of a process). A task seen for the first time sends a few children alone
("probes", enough to keep every worker thread busy) and holds the rest until a probe's
duration comes back: the workers never wait for the decision, and a map of slow experiments
is never packed, whatever order its durations come in. joblib's ``batch_size="auto"`` made the
same choice for the same reason.
"""

from __future__ import annotations

CHUNK_SECONDS = 0.05  # a chunk should take about this long on a worker
MAX_CHUNK = 1000
# Fewer children than this per chunk save little scheduling, and a chunk of a few children
# whose durations vary (a sweep's) would leave one worker finishing alone at the end.
MIN_CHUNK = 4
MIN_PROBES = 4


def chunk_size(mean: float | None, sent: int = 0, ended: int = 0, probes: int = MIN_PROBES
               ) -> int | None:
    """Children per Dask task for the next child of an automatic map, or None: hold it back
    until a probe's duration is known.

    ``mean``: the task's mean measured duration in seconds (None: none measured yet);
    ``sent``/``ended``: its probes sent and ended so far; ``probes``: how many to send.
    """
    if mean is not None:
        size = int(CHUNK_SECONDS / max(mean, 1e-9))
        return min(MAX_CHUNK, size) if size >= MIN_CHUNK else 1
    if sent < probes:
        return 1  # a probe: it runs alone to be measured
    if ended >= sent:
        return 1  # every probe ended unmeasured (cancelled, a lost worker): stop waiting
    return None


def probe_count(threads: int) -> int:
    """Probes to send for a task not measured yet: two per worker thread, so that the threads
    still have work queued when the first duration reaches the client."""
    return max(MIN_PROBES, 2 * threads)


class Probes:
    """Per map (run, task name) not measured yet: its probes sent and ended."""

    __slots__ = ("ended", "limit", "sent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent = 0
        self.ended = 0
