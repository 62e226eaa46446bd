"""One subscriber's delivery of a run's events: its queue, its thread, its pace, and the
blocks (a map's children announced at once) made into events as they are delivered.
``events.EventBus`` makes one per subscriber; the event types live in ``events``."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Event, Subscriber

log = logging.getLogger("labloom")

FLUSH_INTERVAL = 0.05  # a subscriber may ask for its own (``flush_interval``: the store's)

# The most events one delivery hands a subscriber: a map of a million children is delivered
# (and stored) a slice at a time, never as one batch.
MAX_BATCH = 10_000
# Events waiting for a subscriber (the store, mostly) past which the engine waits before it
# launches more task runs: memory stays bounded when a million of them run faster than they
# can be recorded. Waiting stops when the queue stops shrinking (a store that is down).
PACE = 20_000
NO_PROGRESS = 5.0  # seconds without a shrinking queue before pacing gives up for a while
# Events of a block per batch (and at most a quarter of it) for a subscriber that takes task
# runs' news first (below).
BLOCK_SLICE = 2_000
# Events of a block kept made for the subscribers behind the first (``EventBlock.events``):
# each was made once per subscriber (twice per map child with the store and the console
# progress), a block's whole width never at once.
WINDOW = 20_000


class EventBlock:
    """Many events of one kind, made when delivered: ``make(i)`` for i in ``range(count)``.
    A map's children are announced this way, so a million ``TaskRunCreated`` never wait in
    a queue at once; ``make`` must read only what no longer changes. ``index_of`` tells which
    ``i`` announces a task run id (None: not in this block)."""

    __slots__ = ("_made", "count", "index_of", "make")

    def __init__(self, make: Callable[[int], Event], count: int,
                 index_of: Callable[[str], int | None] | None = None) -> None:
        self.make = make
        self.count = count
        self.index_of = index_of
        # (i of the first, the events made from it): one tuple, replaced whole, so that the
        # subscribers' threads reading it never see one half changed.
        self._made: tuple[int, list[Event]] = (0, [])

    def events(self, start: int, end: int) -> list[Event]:
        """``make(i)`` for i in ``range(start, end)``, made once for all subscribers: the
        first to ask makes them, and the last ``WINDOW`` made are kept for those behind (one
        further behind makes its own, as all did before)."""
        first, made = self._made
        if not first <= start <= first + len(made):  # not next to what is kept
            if start < first:
                return [self.make(i) for i in range(start, end)]  # far behind: its own
            first, made = start, []
        if end > first + len(made):
            made = made + [self.make(i) for i in range(first + len(made), end)]
            events = made[start - first:end - first]
            drop = max(0, len(made) - WINDOW)
            self._made = (first + drop, made[drop:])
            return events
        return made[start - first:end - first]


def numbered(prefix: str, first: int, count: int) -> Callable[[str], int | None]:
    """``index_of`` for a block whose ``i`` announces the task run ``prefix + str(first + i)``."""

    def index_of(task_run_id: str) -> int | None:
        tail = task_run_id[len(prefix):]
        i = int(tail) - first if task_run_id.startswith(prefix) and tail.isdigit() else -1
        return i if 0 <= i < count else None
    return index_of


def _announced_after(index_of: Callable[[str], int | None], task_run_ids: Sequence[str],
                     end: int) -> bool:
    """Whether one of ``task_run_ids`` is announced at ``end`` of the block or later. A task
    run's id is its run's id, a dot and its number (``numbered``), so the highest number is
    the longest id, then the greatest text: one ``index_of`` for a batch of logging calls,
    not one per call (0.6 µs per map child logging once, issue 19). Only when that one is
    not in the block (a number past it, an id of another shape) is each one looked at."""
    if not task_run_ids:
        return False
    i = index_of(max(zip(map(len, task_run_ids), task_run_ids, strict=True))[1])
    if i is not None:
        return i >= end  # the block's highest here: the others come before it
    return any((i := index_of(each)) is not None and i >= end for each in task_run_ids)


class Delivery:
    """One subscriber's queue and pace: its own thread hands it what queued, in order, every
    ``FLUSH_INTERVAL`` seconds, so a slow subscriber only ever delays itself.

    A subscriber with ``news_first = True`` (the store's recorder) gets a block ``BLOCK_SLICE``
    events at a time, each slice followed by the news queued behind the block (states, log
    lines, ...) of task runs already announced: a state waits for a slice of a map's
    announcements, not for all (100,000 took the store seconds). Each task run's order is
    kept, and the news' among themselves. One with ``room()`` (the store's recorder again)
    gets batches of at most that many events, and the engine waits while more wait
    (``limit``): a store slower than the run keeps it a fraction of a second behind.
    A subscriber's ``flush_interval`` (seconds), when it has one, replaces ``FLUSH_INTERVAL``
    while events come (a quiet run's delivery still wakes every ``FLUSH_INTERVAL`` at most)."""

    def __init__(self, callback: Subscriber, name: str, running: bool = True,
                 news: tuple[type, ...] = ()) -> None:
        self.callback = callback
        # The event types that may pass a block (the bus says which: a task run's news).
        self.news = news if getattr(callback, "news_first", False) else ()
        self._room: Callable[[], int] | None = getattr(callback, "room", None)
        self.interval: float = getattr(callback, "flush_interval", FLUSH_INTERVAL)
        # Events, and [block, next index] for an EventBlock being delivered.
        self.queue: deque[Any] = deque()
        self._lock = threading.RLock()  # one delivery at a time, whoever drives it
        self._reported = False
        self._name = name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if running:
            self.start()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), name=self._name,
                                        daemon=True)
        self._thread.start()

    def drain(self) -> None:
        with self._lock:
            while self.queue:
                batch = self._take()
                try:
                    self.callback(batch)
                except Exception:
                    # A broken observer must never break the run; say so once.
                    if not self._reported:
                        self._reported = True
                        log.exception("[labloom] event subscriber %r raised; ignoring it",
                                      self.callback)

    def limit(self) -> int:
        """Events that may wait before the engine does: ``PACE``, or the subscriber's
        ``room()`` when less (the store's: what it writes in about 0.1 s)."""
        return PACE if self._room is None else max(1, min(PACE, self._room()))

    def _take(self) -> list[Event]:
        queue = self.queue
        batch: list[Event] = []
        most = min(MAX_BATCH, self.limit())
        while queue and len(batch) < most:
            item = queue[0]
            if type(item) is not list:
                batch.append(queue.popleft())
                continue
            block, start = item
            end = min(block.count, start + most - len(batch))
            if first := bool(self.news) and block.index_of is not None:
                end = min(end, start + min(BLOCK_SLICE, max(1, most // 4)))
            batch += block.events(start, end)
            item[1] = end
            if end >= block.count:
                queue.popleft()
            elif first:
                news = self._news_behind(block.index_of, end, most - len(batch))
                batch += news
                if news:
                    break  # delivered now; the rest of the block in the next batches
        return batch

    def _news_behind(self, index_of: Callable[[str], int | None], end: int,
                     most: int) -> list[Event]:
        """The news behind the head block, up to one that is not, or is of its ``end`` on."""
        queue = self.queue
        head = queue.popleft()
        news: list[Event] = []
        while queue and len(news) < most:
            event = queue[0]
            if not isinstance(event, self.news):
                break
            task_run_id = getattr(event, "task_run_id", None)  # None: the flow body's lines
            if task_run_id is not None:
                i = index_of(task_run_id)
                if i is not None and i >= end:
                    break
            elif _announced_after(index_of, getattr(event, "task_run_ids", ()), end):
                break  # a batch of logging calls, of a task run not announced yet
            news.append(queue.popleft())
        queue.appendleft(head)
        return news

    def stop(self, wait: bool = True) -> None:
        """Deliver what is queued, then end the thread (the bus owns it)."""
        self._stop.set()
        thread = self._thread
        if wait and thread is not None and threading.current_thread() is not thread:
            thread.join()
        self.drain()

    def _loop(self, stop: threading.Event) -> None:
        wait = self.interval
        while not stop.wait(wait):
            busy = bool(self.queue)
            self.drain()
            # A run with nothing new (long task runs) wakes its subscriber at most every
            # FLUSH_INTERVAL, however short the subscriber's own interval.
            wait = self.interval if busy else max(self.interval, FLUSH_INTERVAL)
