"""The sender of ``labloom serve``'s failure alerts: the store's pending alerts
(``alert_outbox``) posted to their webhooks, each URL on a thread of its own.

One thread posting every alert in turn let a webhook that hangs (accepts, never answers) hold
every other schedule's alerts back by its timeout times its retries. Here each URL has its own
``labloom-alert`` thread while it has alerts to take, at most ``MAX_SENDERS`` at once: a
hanging webhook holds only its own. The threads only post; the store is read and written by
the scheduler's loop (``step``), through its one connection, which claims the alerts due and
keeps what became of each. The server owns the sender and stops it (``close``).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..core.env_numbers import env_number
from ..core.errors import ScheduleError
from ..store import store_clock
from ..store.db import Conn
from . import alert_outbox as outbox
from .alerts import delays_from_env, try_post

log = logging.getLogger("labloom")

MAX_SENDERS = 4  # webhooks posted to at once; a fifth waits for one of them to finish
# Waits before each retry: kept in the store, they cost nothing while they last, so a webhook
# down for a few minutes (a restart, a deploy) still gets its alerts (``labloom run``'s thread
# waits 1, 4 and 15 s).
DELAYS = (1.0, 4.0, 15.0, 60.0, 300.0)
TIMEOUT = 10.0  # seconds a webhook (or relay) has to answer one alert


def timeout_from_env() -> float:
    """``LABLOOM_NOTIFY_TIMEOUT``: seconds a webhook has to answer (10 by default)."""
    return env_number("LABLOOM_NOTIFY_TIMEOUT", TIMEOUT, "a number of seconds above 0",
                      lambda seconds: 0 < seconds < math.inf, ScheduleError,
                      "how long a webhook has to answer an alert")


class AlertSender:
    """Sends the store's pending alerts for the scheduler ``sender`` (its id)."""

    def __init__(self, sender: str, delays: Sequence[float], timeout: float = TIMEOUT) -> None:
        self.sender = sender
        self.delays = tuple(delays)
        self.timeout = timeout
        # (url, outcome) from the threads; an outcome of None: that URL's thread is done
        self._results: queue.Queue[tuple[str, outbox.Outcome | None]] = queue.Queue()
        self._threads: dict[str, threading.Thread] = {}  # by URL, until its results are kept
        self._done: set[str] = set()  # URLs whose thread ended, kept once its results are
        self._unkept: list[outbox.Outcome] = []  # taken from the threads, not yet in the store
        self._stop = threading.Event()

    @classmethod
    def from_env(cls, sender: str) -> AlertSender:
        """Retried after ``LABLOOM_NOTIFY_DELAYS``, each post given ``LABLOOM_NOTIFY_TIMEOUT``."""
        given = os.environ.get("LABLOOM_NOTIFY_DELAYS")
        return cls(sender, delays_from_env(given) if given else DELAYS, timeout_from_env())

    def enqueue(self, conn: Conn, schedule: str, body: dict[str, Any]) -> None:
        """Keep an alert for sending (inside the transaction recording its failure)."""
        outbox.enqueue(conn, schedule, body, store_clock.now(conn))

    def step(self, conn: Conn) -> None:
        """Keep what the threads did, then start a thread for each URL with alerts due."""
        self._keep(conn)
        room = MAX_SENDERS - len(self._threads)
        now = store_clock.now(conn)
        if room <= 0 or self._stop.is_set() or not outbox.any_due(conn, now):
            return
        for batch in outbox.claim(conn, self.sender, now, set(self._threads), room):
            thread = threading.Thread(target=self._post, args=(batch,), daemon=True,
                                      name=f"labloom-alert-{len(self._threads) + 1}")
            self._threads[batch.url] = thread
            thread.start()

    def _keep(self, conn: Conn, wait: float = 0.0) -> None:
        """Keep the threads' results in the store. Taken off the queue first and dropped only
        once kept: a store away now keeps them for the next step, the alerts still claimed."""
        try:
            while True:
                url, outcome = self._results.get(timeout=wait) if wait else \
                    self._results.get_nowait()
                wait = 0.0
                if outcome is None:
                    self._done.add(url)
                else:
                    self._unkept.append(outcome)
        except queue.Empty:
            pass
        if self._unkept:
            outbox.record(conn, self.sender, store_clock.now(conn), self._unkept, self.delays)
            self._unkept.clear()
        for url in self._done:
            self._threads.pop(url, None)
        self._done.clear()

    def _post(self, batch: outbox.Batch) -> None:
        """One URL's alerts in their order, until one is refused (the rest wait for its next
        try) or the server stops."""
        sent = 0
        try:
            for item in batch.items:
                if self._stop.is_set():
                    break
                sent += 1
                reason = try_post(batch.url, item.body, self.timeout)
                self._results.put((batch.url, outbox.Outcome(item, reason)))
                if reason is not None:
                    break
        finally:
            for item in batch.items[sent:]:
                self._results.put((batch.url, outbox.Outcome(item, None, tried=False)))
            self._results.put((batch.url, None))

    def close(self, conn: Conn | None, timeout: float = 10.0,
              hurry: Callable[[], bool] = lambda: False) -> None:
        """At ``serve``'s stop: send what is due for up to ``timeout`` seconds, or until
        ``hurry()`` (a second SIGTERM or Ctrl-C), then let go of the alerts still on their way
        and say how many the store keeps for the next ``serve`` (a webhook that does not answer
        holds each one for a while). ``conn`` None: the store is away, and keeps them all the
        same (this scheduler's claims end with it)."""
        started = time.monotonic()
        deadline = started + timeout
        if conn is None:
            self._stop.set()
            log.error("[labloom] alerts not sent yet stay in the store (not reached now): the "
                      "next `labloom serve` sends them")
            return
        said = False
        while True:  # each thread's results kept may let the next alerts of its URL go
            self.step(conn)
            if not self._threads or time.monotonic() >= deadline or hurry():
                break
            if not said and time.monotonic() >= started + 1:
                said = True  # a webhook slow to answer holds the stop: say why, and the way out
                log.warning("[labloom] stopping: waiting up to %gs for %d webhook(s) to take "
                            "their alerts; stop again to leave them in the store for the next "
                            "`labloom serve`", timeout, len(self._threads))
            self._keep(conn, wait=min(0.2, max(0.01, deadline - time.monotonic())))
        self._stop.set()
        self._keep(conn)
        outbox.release(conn, self.sender)  # a thread still posting: its alert is sent again
        left = outbox.count(conn)
        if left:
            log.error("[labloom] %d alert(s) not sent: stopped while the webhook was not taking "
                      "them, or before their next try; kept in the store, the next `labloom "
                      "serve` on it sends them", left)
