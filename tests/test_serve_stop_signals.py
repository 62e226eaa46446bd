"""`labloom serve` stops on SIGTERM wherever the signal lands in its loop.

A Python signal handler runs in the main thread between two of its bytecodes, so it can run
inside the serve's own sleep between ticks. When that sleep was a ``threading.Event.wait`` and
the handler an ``Event.set``, a signal landing in the lines where the wait holds the event's
lock blocked the handler forever (a serve under CI's load did not stop within 60 s of SIGTERM,
then was killed). Here the handler is run at every line the serve's sleep goes through, as a
signal may be (the same harness blocks forever at the fifth line with the Event), and a real
serve sleeping a long tick is woken by SIGTERM at once."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from cli_helpers import start_labloom, stop
from labloom.schedule.stop_signals import StopSignals


def _handled_at(event_number: int, signals: StopSignals, signum: int) -> int:
    """``signals.wait`` with ``signals.handle`` run at its ``event_number``-th traced event
    (a call or a line, in it or anything it calls), in a thread of its own so that a handler
    that blocks shows as a thread that does not end; how many events the wait went through."""
    seen = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        if event in ("call", "line"):
            seen += 1
            if seen == event_number:
                signals.handle(signum, frame)
        return tracer

    def sleep() -> None:
        sys.settrace(tracer)
        try:
            signals.wait(0.01)
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), (
        f"the stop signal's handler, run at line event {event_number} of the serve's sleep, "
        "blocked it")
    return seen


def test_a_stop_signal_landing_anywhere_in_the_serves_sleep_is_taken_at_once() -> None:
    signals = StopSignals()  # a serve's (``ScheduleServer.signals``)
    event_number = 1
    while True:
        signals.stopping = signals.hurry = False
        seen = _handled_at(event_number, signals, signal.SIGTERM)
        if seen < event_number:
            break  # past the sleep's last event: every one was tried
        assert signals.stopping and not signals.hurry
        event_number += 1
    assert event_number > 3, "the sleep ran no lines: the harness proved nothing"
    signals.stopping, signals.hurry = True, False
    _handled_at(1, signals, signal.SIGTERM)  # a second signal: the runs terminated at once
    assert signals.hurry
    signals.close()


def test_sigterm_wakes_a_serve_sleeping_a_long_tick(labloom_home: Path) -> None:
    # An hour's tick: only the signal can end the sleep it is in.
    labloom_home.mkdir(parents=True)
    proc = start_labloom(labloom_home, "serve", "--tick", "3600")
    try:
        assert proc.stdout is not None
        assert "serving" in proc.stdout.readline()  # its first tick done: asleep now
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)  # raises while it sleeps on
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    assert "scheduler stopped" in stdout
