"""Who watches a run: the one registry of observers that every run calls as it starts (the
store's recorder and the terminal progress, which ``import labloom`` registers first; a
notebook's history and print tail), and the run's own ``@flow(on_failure=...)`` hooks.

>>> from labloom.core.observers import add_run_observer
>>> stop = add_run_observer(lambda run: run.subscribe(print))   # every run from now on
>>> stop()
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .states import State

if TYPE_CHECKING:
    from . import events as ev
    from .flow_run import FlowRun

log = logging.getLogger("labloom")


class RunObserver(Protocol):
    """Called with each run as it starts, before its executor starts and before its first
    event; it may ``run.subscribe(..., replay=True)`` to see the whole run."""

    def __call__(self, run: FlowRun, /) -> None: ...


_run_observers: list[RunObserver] = []


def add_run_observer(observer: RunObserver, first: bool = False) -> Callable[[], None]:
    """Call ``observer`` with every run that starts from now on; returns a remover.
    ``first``: before those added earlier (the store's recorder): an interrupt in theirs
    still leaves the run known to it (`labloom run` reports the run that began)."""
    _run_observers.insert(0 if first else len(_run_observers), observer)
    return lambda: _run_observers.remove(observer) if observer in _run_observers else None


def run_observers() -> list[RunObserver]:
    return list(_run_observers)


def run_starts(run: FlowRun) -> None:
    """What the engine calls as a run starts: every observer, in the order they came, all or
    none. A Ctrl-C (or `labloom run`'s SIGTERM) landing between two of them is raised after
    the last (the engine ends the run then): between `labloom run`'s (first) and the store's,
    the command reported a Cancelled run the store never had. Observers are short steps (the
    store's attach, the slowest, a bounded one held already)."""
    from .interrupts_held import InterruptsHeld  # here: the engine's, not ``import labloom``'s

    with InterruptsHeld():
        for observer in tuple(_run_observers):
            observer(run)


def run_announced(run: FlowRun | None, event: ev.RunCreated) -> None:
    """What the engine calls once a run's executor is up, before any of its tasks starts: the
    run's ``when_announced`` callbacks (none on most runs: a loop over an empty list)."""
    for callback in run.announced if run is not None else ():
        try:
            callback(event)
        except Exception:  # a view's fault: the run goes on, as its subscribers' faults do
            log.exception("[labloom] %r raised as run %s started; the run is unaffected",
                          callback, event.run_id)


class FailureHooks:
    """Calls ``@flow(on_failure=...)`` hooks when the run fails; a hook that raises is logged."""

    def __init__(self, run: Any) -> None:
        # Weakly: the bus holds this subscriber, and the run must not keep itself alive. The
        # run is held (by ``at_exit``) until its bus delivered the end, so a hook always has it.
        self._run = weakref.ref(run)

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        run = self._run()
        if run is None:
            return
        # Imported here: ``import labloom`` registers observers and must not pay for the
        # event classes (5.6 ms of dataclass creation), which a Dask worker never needs.
        from .events import RunFinished

        for event in batch:
            if isinstance(event, RunFinished) and event.state in (State.FAILED, State.CRASHED):
                for hook in run.flow.on_failure:
                    try:
                        hook(run)
                    except Exception:
                        log.exception("[labloom] on_failure hook %r raised; the run is unaffected", hook)
