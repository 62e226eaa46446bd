"""A Ctrl-C landing anywhere in the start of the store's cancel watcher (``CancelWatcher.watch``,
threading's own Python included) leaves it startable: the next run's watch answers.

Found under a CPU burner in session 53 (tests/test_interrupt_local_threading.py, 1 of its 3
rounds: a run's start waited for ever): a run starts the watcher's thread anew when the last
one ended (it ends once no watched run is live), clearing its stop event first; a Ctrl-C in
``Event.clear`` (its lock taken in Python, ``Condition.__enter__``) kept that lock for good, and
every later run's start waited on it. Whether the thread had ended by the next run was timing:
here it always has."""

from __future__ import annotations

from cli_helpers import wait_for
from interrupt_checks import THREADING, answered, interrupted
from interrupt_points import Landing
from labloom import State
from labloom.store.cancel import CancelWatcher
from labloom.store.db import get_database


class _Ended:
    """A watched run that has ended: the watcher's thread finds no live run and ends."""

    id = "ended"
    state = State.COMPLETED


def test_a_ctrl_c_anywhere_in_the_cancel_watchers_start_leaves_it_startable() -> None:
    watcher = CancelWatcher(get_database(), interval=0.01)
    run = _Ended()

    def idle() -> None:  # so that the next watch starts the thread anew (clears the event)
        wait_for(lambda: watcher._thread is None or not watcher._thread.is_alive(), 60,
                 "the watcher's thread to find no live run and end")

    def watch() -> None:
        watcher.watch(run)

    try:
        found: list[str] = []
        idle()
        interrupted(Landing(0, found, also=THREADING), watch)
        # It proves something: it lands as ``Event.clear`` took its lock (Condition.__enter__).
        assert any(w.startswith(THREADING) and w.endswith(" __enter__") for w in found), found
        for number in range(1, len(found) + 1):
            idle()
            landing = Landing(number, also=THREADING)
            raised = interrupted(landing, watch)
            said = f"Ctrl-C at point {number} ({landing.where})"
            assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
            idle()
            assert answered(watch) == [None], f"{said}: the next watch never answered"
    finally:
        watcher.close()
