"""A task's function on its way to a Dask worker: pickled on its own (``Shipped``) and unpickled
by the task itself on the worker (``unship``), not with the message that carries the task.

Unpickled with the message, a function whose code uses a module the workers cannot import
(one beside the notebook or the flow's file, on the client's ``sys.path`` alone) broke the
worker's connection to its scheduler: Dask closed the worker (its nanny too), gave the task to
the next one, which closed too, and the run waited for workers that never came back, with
nothing said anywhere but the workers' own logs. Unpickled by the task, the import error fails
that task run alone, naming the module and what to do; the workers live on.
"""

from __future__ import annotations

from typing import Any


class Shipped:
    """A task's function, pickled apart from the task when the task leaves this process; an
    in-process worker (``processes=False``) receives it as it is."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __reduce__(self) -> tuple[Any, ...]:
        # Dask's own pickling: plain pickle, cloudpickle for what that cannot take by name
        # (a function of the notebook or of a flow's file loaded by path).
        from distributed.protocol import pickle

        return Arrived, (pickle.dumps(self.fn),)  # type: ignore[no-untyped-call]


class Arrived:
    """A function pickled apart, on the worker: unpickled once, by the first call that needs
    it (a chunk's children share it)."""

    __slots__ = ("fn", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.fn: Any = None


def unship(fn: Any, task_name: str) -> Any:
    """The function itself, on the worker (what is not shipped is returned as it is)."""
    if isinstance(fn, Shipped):
        return fn.fn
    if not isinstance(fn, Arrived):
        return fn
    if fn.fn is None:
        from distributed.protocol import pickle

        try:
            fn.fn = pickle.loads(fn.payload)  # type: ignore[no-untyped-call]
        except ImportError as exc:
            raise missing_on_worker(exc, task_name) from exc
    return fn.fn


def missing_on_worker(exc: ImportError, task_name: str) -> ImportError:
    """What a task run says when its worker cannot import what the task's code uses."""
    from distributed import get_worker

    try:
        where = f"the Dask worker {get_worker().address}"
    except ValueError:
        where = "a Dask worker"
    kind = ModuleNotFoundError if isinstance(exc, ModuleNotFoundError) else ImportError
    return kind(
        f"{exc} on {where}: task {task_name!r} uses it, and the workers must import what "
        "a task's code uses. Install it where the workers run (or start them where it is "
        "importable, e.g. PYTHONPATH), or define what the task uses in the notebook or the "
        "flow's file"
    )
