"""Concurrency limits for every executor (``Limiter``, the protocol, is ``core/hooks.py``'s):
``StoreLimiter`` (slots counted in the store, shared by every process and host using it,
granted in arrival order) and ``Chained`` (the store first, then a Dask cluster's own
semaphore; see ``executors/dask.py``).

Grants to a waiting task run are handed out by a small thread of their own, because the engine
releases a slot while holding its run's lock and the grant takes another run's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.interrupts_held import InterruptsHeld
from .db import is_transient, short_error

if TYPE_CHECKING:
    from ..core.hooks import Limiter

_Waiter = tuple[dict[str, int], str, Callable[[], None]]  # limits, holder, granted

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logging.getLogger("labloom").warning("%s", message)


class StoreLimiter:
    """Slots counted in the store (see ``concurrency_slots.py``), shared by every process on it.

    A waiting task run holds no thread and has a place in the store's line. One small thread
    per process, alive while this process holds or waits for a slot, tries the line in order
    every 0.1 s (slots freed by other processes) and at once when a slot is given back here,
    and refreshes the heartbeat of what this process holds, so other hosts can tell a live
    holder from a dead one.

    Each pass asks only those of its waiters at the head of their tags' lines (as many places
    as the tag has slots: no one further back can be granted), so a pass costs the same however
    long the line. Once every ``FULL_PASS`` seconds it asks in order over all its waiters, as
    every pass once did: one whose place was lost (given back late, or swept while this process
    could not beat) is asked first and so joins the line again, and the tags' dead are swept.
    """

    POLL = 0.1
    FULL_PASS = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Who waits here, by holder: no order of its own, the store's line is read each pass
        # (``_take_in_line``); the order waiters reached a list could differ from it.
        self._waiting: dict[str, _Waiter] = {}
        self._held: set[str] = set()
        # Holders whose slots the store could not take back when released (a server
        # restarting, a full disk): the thread gives them back once it can.
        self._owed: set[str] = set()
        self._away = False  # the store failed the last pass: said once, and once when back
        # How deep to read each tag's line (its most slots among the waiters here): only that
        # head can be granted. Tags left by every waiter drop out at the next full pass.
        self._depths: dict[str, int] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        if not tags:
            return True
        from ..core.errors import StoreUnavailableError
        from . import concurrency_slots as store

        try:
            limits = store.limits_for(tags)
        except StoreUnavailableError as exc:
            # The limits live in that store: with it unusable none can be known or kept.
            _warn_once(f"{exc}. Concurrency limits are not applied.")
            return True
        if not limits:
            return True
        with self._lock:
            self._held.add(holder)
            self._owed.discard(holder)  # a retry of a task run whose release was not taken
            self._ensure_thread()
        # The store is asked outside our lock (it may wait on another process's write); the
        # store's own line keeps arrival order, and the loop retries what waits here.
        try:
            if store.try_take(limits, holder, queue=True):
                return True
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._trouble(exc)  # it waits here: the thread asks again when the store is back
        with self._lock:
            if holder in self._held:  # not released meanwhile
                self._waiting[holder] = (limits, holder, granted)
                for tag, n in limits.items():
                    self._depths[tag] = max(n, self._depths.get(tag, 0))
        return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        if not tags:
            return
        from . import concurrency_slots as store

        with self._lock:
            if holder not in self._held:
                return
            self._held.discard(holder)
            self._waiting.pop(holder, None)
        try:
            store.give_back(holder)
        except Exception as exc:  # raised here, it broke the engine's bookkeeping of the run
            with self._lock:
                self._owed.add(holder)
                self._ensure_thread()
            self._trouble(exc)
        self._wake.set()

    def _trouble(self, exc: BaseException) -> None:
        if not self._away:  # once per outage: the loop tries again every second meanwhile
            self._away = True
            logging.getLogger("labloom").warning(
                "[labloom] concurrency limits: the store is unavailable (%s); slots are "
                "asked for and given back when it is back", short_error(exc))

    def _ensure_thread(self) -> None:
        if self._thread is None:
            from . import concurrency_slots as store

            # Read once, in the caller's thread, as the thread starts: the store's settings are
            # fixed as its Database is made, and asking at each poll (10 a second) took the
            # store's lock and looked up its connection each time, for the same number.
            every = store.beat_every()
            thread = threading.Thread(target=self._loop, args=(every,), name="labloom-limits",
                                      daemon=True)
            # Held: ``Thread.start`` waits in Python, and a Ctrl-C there left ``_thread`` set
            # with no thread running: nothing here was granted or given back again, and every
            # later run behind a limit waited for ever (tests/test_interrupt_dask_slots.py).
            with InterruptsHeld():
                thread.start()
                self._thread = thread

    def _loop(self, beat_every: float) -> None:
        import logging
        import time

        from . import concurrency_slots as store

        last_beat = last_full = time.monotonic()
        while True:
            self._wake.wait(self.POLL)
            self._wake.clear()
            grants = []
            whole = time.monotonic() - last_full >= self.FULL_PASS
            with self._lock:
                if not self._held and not self._owed:
                    self._thread = None  # nothing held, waiting or owed: the thread ends
                    return
                owed = list(self._owed)
                if whole:
                    waiting = list(self._waiting.values())
                    self._depths = {}
                    for limits, _, _ in waiting:
                        for tag, n in limits.items():
                            self._depths[tag] = max(n, self._depths.get(tag, 0))
                depths = dict(self._depths)
            try:
                for holder in owed:
                    store.give_back(holder)
                    with self._lock:
                        self._owed.discard(holder)
                # The store keeps arrival order across processes: try each in turn, outside
                # our lock so that acquire and release never wait for the store behind it.
                if whole:
                    last_full = time.monotonic()
                    taken = _take_in_line(self._with_limits_now(waiting))
                else:
                    place = store.line_heads(depths)
                    with self._lock:
                        heads = [w for h in place if (w := self._waiting.get(h)) is not None]
                    taken = _ask_in_order(sorted(heads, key=lambda w: place[w[1]]))
                with self._lock:
                    for w in taken:
                        if self._waiting.get(w[1]) is w:  # not asked for again meanwhile
                            del self._waiting[w[1]]
                    grants = [w[2] for w in taken if w[1] in self._held]
                    orphans = [w[1] for w in taken if w[1] not in self._held]
                for holder in orphans:  # released while the store granted it: hand it back
                    store.give_back(holder)
                if time.monotonic() - last_beat >= beat_every:
                    with self._lock:
                        held = set(self._held)
                    store.beat(held)
                    last_beat = time.monotonic()
                if self._away:
                    self._away = False
                    logging.getLogger("labloom").warning(
                        "[labloom] concurrency limits: the store is back")
            except Exception as exc:  # a store that is away for a while: try again next poll
                self._trouble(exc)
                time.sleep(1.0)
            # Outside our lock: a grant takes the run's lock, whose holder may be releasing here.
            for granted in grants:
                granted()

    def _with_limits_now(self, waiting: list[_Waiter]) -> list[_Waiter]:
        """``waiting`` with their tags' limits as the store has them now (read once a full
        pass). Each waiter kept the limits it queued under: ``labloom limit set db 10`` during
        a night's run left its map queued behind limit 2 going two at a time to the end (and
        a lowered one let the queued through at the old number)."""
        from . import concurrency_slots as store

        now = store.limits_for({tag for limits, _, _ in waiting for tag in limits})
        renewed = []
        with self._lock:
            for waiter in waiting:
                limits, holder, granted = waiter
                fresh = {tag: now[tag] for tag in limits if tag in now}
                if fresh != limits and self._waiting.get(holder) is waiter:
                    waiter = self._waiting[holder] = (fresh, holder, granted)
                renewed.append(waiter)
                for tag, n in fresh.items():
                    self._depths[tag] = max(n, self._depths.get(tag, 0))
        return renewed


def _take_in_line(waiting: list[_Waiter]) -> list[_Waiter]:
    """Those of ``waiting`` that the store grants now, asked in the store's line order. Once one
    is refused, nobody after it in the line who needs all of its tags is asked: the store would
    refuse them too. Asking each (one store transaction apiece) made every freed slot cost a
    transaction per waiter: 400 task runs limited to 2 took 17 s, 1,200 did not finish in 100 s.
    The order is the store's, read each pass, not the order waiters reached this list: two
    threads queue in one order and append here in the other, and a place given back late
    sends its holder to the end of the line; asked out of order, the line's head would never
    be asked. Those not in line at all (their places given back, or never taken: they asked
    while the store was away) are asked first, each of them, and so join it: skipped after a
    refusal, they joined one a pass, and 120 task runs queued during a full disk went three a
    second (a pass a second) once space came back."""
    from . import concurrency_slots as store

    place = store.places({tag for limits, _, _ in waiting for tag in limits})
    return _ask_in_order(sorted(waiting, key=lambda waiter: place.get(waiter[1], -1)),
                         out_of_line={holder for _, holder, _ in waiting} - set(place))


def _ask_in_order(waiting: list[_Waiter], out_of_line: set[str] | None = None) -> list[_Waiter]:
    """Those of ``waiting`` (in line order) that the store grants now; those ``out_of_line``
    are asked even after a refusal, to queue them; see ``_take_in_line``."""
    from . import concurrency_slots as store

    taken = []
    refused: list[frozenset[str]] = []  # the tags of each waiter refused in this pass
    for waiter in waiting:
        tags = frozenset(waiter[0])
        if waiter[1] not in (out_of_line or ()) and any(earlier <= tags for earlier in refused):
            continue
        if store.try_take(waiter[0], waiter[1], queue=True):
            taken.append(waiter)
        else:
            refused.append(tags)
    return taken


class Chained:
    """Two limiters in turn, ``first`` then ``second``: a task run starts when both granted.
    Every holder takes them in the same order, so no two wait on each other in a cycle."""

    def __init__(self, first: Limiter, second: Limiter) -> None:
        self.first = first
        self.second = second

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        def then() -> None:
            if self.second.acquire(tags, holder, granted):
                granted()

        if self.first.acquire(tags, holder, then):
            return self.second.acquire(tags, holder, granted)
        return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        self.second.release(tags, holder)
        self.first.release(tags, holder)


_process_limiter: StoreLimiter | None = None


def process_limiter() -> StoreLimiter:
    """This process's limiter: slots shared through the store, whatever the executor."""
    global _process_limiter
    if _process_limiter is None:
        _process_limiter = StoreLimiter()
    return _process_limiter
