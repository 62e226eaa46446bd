"""How many map children share one Dask task, when the task leaves it to labloom (the default,
``batch_size="auto"``; ``batch_size=N`` fixes it, ``batch_size=1`` turns chunking off).

Dask costs about a millisecond of scheduling per task: nothing next to a 0.4 s experiment,
most of the time of a task that takes microseconds. So a chunk gets as many children as take
about ``CHUNK_SECONDS``, from the durations measured on the cluster so far (per task name,
shared by the runs of a process). A task seen for the first time sends a few children alone
("probes", enough to keep every worker thread busy) and holds the rest until the probes'
durations decide (``Probes``): a slow probe at once, so that the workers never wait for a map
of slow experiments, which is never packed, whatever order its durations come in. joblib's ``batch_size="auto"`` made the
same choice for the same reason.
"""

from __future__ import annotations

CHUNK_SECONDS = 0.05  # a chunk should take about this long on a worker
MAX_CHUNK = 1000
# Fewer children than this per chunk save little scheduling, and a chunk of a few children
# whose durations vary (a sweep's) would leave one worker finishing alone at the end.
MIN_CHUNK = 4
MIN_PROBES = 4


def chunk_size(mean: float) -> int:
    """Children per Dask task for a task whose children take ``mean`` seconds each."""
    size = int(CHUNK_SECONDS / max(mean, 1e-9))
    return min(MAX_CHUNK, size) if size >= MIN_CHUNK else 1


def probe_count(threads: int) -> int:
    """Probes to send for a task not measured yet: two per worker thread, so that the threads
    still have work queued when the first duration reaches the client."""
    return max(MIN_PROBES, 2 * threads)


class Probes:
    """Per map (run, task name) launched before its task was measured: its probes sent and
    ended, the fastest measured, and the children per Dask task they decided (kept for the
    map's other children; later runs decide from the mean of all durations measured).

    The fastest probe decides, not the mean: a probe runs alone, the first call of its Dask
    task, which costs more than a chunk's later children (in a fresh process, session 34, a
    no-op measured 75-90 µs as a worker's first call, 33-59 µs as its second, 5-25 µs inside
    a chunk). Deciding from the first probe to end, often a worker's first call, made chunks
    of 550-850 where later maps made 1,000: 1-3 more Dask tasks, about 1.1 ms of the kernel's
    CPU each. So a short probe waits for more: until half the probes and one more ended (with
    two per thread, at least one is a thread's second call). A probe that says "one child per
    Dask task" decides alone, at once, whatever the others said: a first call's extra is
    nothing next to it, the workers need not wait, and a map holding a slow child (a sweep's
    experiment) is not packed after a fast one.
    """

    __slots__ = ("ended", "fastest", "limit", "sent", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent = 0
        self.ended = 0
        self.fastest: float | None = None
        self.size: int | None = None

    def next_size(self) -> int | None:
        """For the map's next child: the size decided; else 1 while probes remain to send (it
        is one) or once every probe ended unmeasured (stop waiting); else None: hold it."""
        if self.size is not None:
            return self.size
        if self.sent < self.limit or self.ended >= self.sent:
            return 1
        return None

    def end(self, started: float, ended: float) -> bool:
        """A probe ended: its start and end on its worker (0.0: not measured, e.g. cancelled).
        True when the children held back can now be decided: the size is, or no probe is out."""
        self.ended += 1
        seconds = ended - started if ended > started > 0 else None
        if seconds is not None and (self.fastest is None or seconds < self.fastest):
            self.fastest = seconds
        if self.size is None:
            if seconds is not None and chunk_size(seconds) == 1:
                self.size = 1  # a slow child: the map stays one per Dask task
            elif self.fastest is not None and (self.ended >= self.limit // 2 + 1
                                               or self.ended >= self.sent):
                self.size = chunk_size(self.fastest)
        return self.size is not None or self.ended >= self.sent
