"""How many map children share one Dask task, when the task leaves it to labloom (the default,
``batch_size="auto"``; ``batch_size=N`` fixes it, ``batch_size=1`` turns chunking off).

Dask costs about a millisecond of scheduling per task: nothing next to a 0.4 s experiment,
most of the time of a task that takes microseconds. So a chunk gets as many children as take
about ``CHUNK_SECONDS``, from the durations measured on the cluster so far (per task name,
shared by the runs of a process). A task seen for the first time sends a few children alone
("probes", enough to keep every worker thread busy) and holds the rest until the probes'
durations decide (``Probes``): slow ones as soon as two ended, so that the workers never wait
for a map of slow experiments, which is not packed after one quick child. joblib's
``batch_size="auto"`` made the same choice for the same reason.
"""

from __future__ import annotations

CHUNK_SECONDS = 0.05  # a chunk should take about this long on a worker
MAX_CHUNK = 1000
# Fewer children than this per chunk save little scheduling, and a chunk of a few children
# whose durations vary (a sweep's) would leave one worker finishing alone at the end.
MIN_CHUNK = 4
MIN_PROBES = 4
# How long a chunk's child with a timeout may hold its siblings after it (they run in turn on
# one worker thread) before the chunk gives them back, to go out one per Dask task
# (``dask_chunk_ends``).
# "auto" packs only children measured under CHUNK_SECONDS / MIN_CHUNK (12.5 ms): one running
# 80 times that is not a short child any more, and a pause of the machine (12 ms seen under
# load) is far from it. Not a share of the timeout: a child's timeout should cost only it.
GIVE_BACK_AFTER = 1.0


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
    ended, their durations, and the children per Dask task they decided (kept for the map's
    other children; later runs decide from the mean of all durations measured).

    Deciding from the first probe to end (the mean of those ended) let one unlucky call decide
    for the whole map. A probe runs alone, the first call of its Dask task, dearer than a
    chunk's later children: in a fresh process (session 34) a no-op measured 75-140 µs as a
    worker's first call, 33-75 µs as its second, 5-25 µs inside a chunk; so a first map of
    5,000 made chunks of 350-850 where later maps made 1,000. And a probe paused by the
    machine (12 ms seen under load) sent a no-op map one child per Dask task. So a probe waits
    for others: the median of those ended says whether to chunk (one slow call cannot), then
    the fastest says how much (a first call's extra, or a pause, only slows). Slow children
    decide as soon as two ended (a sweep's experiments: the workers need not wait for more);
    short ones once half the probes and one more ended (with two per thread, at least one is
    a thread's second call).
    """

    __slots__ = ("ended", "limit", "measured", "sent", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent = 0
        self.ended = 0
        self.measured: list[float] = []  # seconds, in the order the probes ended
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
        if ended > started > 0:
            self.measured.append(ended - started)
        if self.size is None and self.measured:
            enough = self.ended >= self.limit // 2 + 1 or self.ended >= self.sent
            if chunk_size(_median(self.measured)) == 1:
                if len(self.measured) >= 2 or enough:
                    self.size = 1
            elif enough:
                self.size = chunk_size(min(self.measured))
        return self.size is not None or self.ended >= self.sent


def _median(values: list[float]) -> float:
    # Not ``statistics.median``: importing ``statistics`` was 2 ms of a fresh process's first
    # Dask map (helper a's review, session 34).
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
