"""Cached and persisted task results: keys, files, and the engine's per-run ``ResultPlanner``.

A cached task's key follows its inputs' values (``cache_keys.py``: hashed where the values
are). Every other task run's key, which files its result for ``labloom retry``, is its
lineage: its task's source and its inputs, a future input contributing its upstream's key, so
computing it never moves data (a retry resumes one run, whose results it means to reuse).
Results are cloudpickled files under
``LABLOOM_HOME/results/<key[:2]>/<key>.pkl``, or under ``LABLOOM_RESULTS_URL`` (any fsspec URL,
see ``result_files.py``), written and read where the task runs.

What gets persisted (``LABLOOM_RESULTS``, read when a run starts):

- ``cached`` (the default): only ``@task(cache=True)`` results, so task data stays where the
  user put it and quick tasks pay no pickling; ``labloom retry`` from another process reruns
  every uncached task that the failed part needs.
- ``all``: every successful result that pickles. A run whose process died can then be
  restarted by ``labloom retry RUN_ID`` from another process, reusing everything that
  finished. The price is one pickle and one file per task run, and disk space for large
  intermediates (delete ``results/`` freely: a missing file only means that task reruns).

With the store off (``LABLOOM_STORE=0``) only cached tasks persist. On Dask, workers need a
shared results folder (``LABLOOM_RESULTS_URL``) for another worker, host or the kernel to find
a file; without one a lookup misses and the task simply computes again, as a warning says once
per run (``worker_folders.py``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import result_files
from .cache_keys import CacheContext, NoKey, digest, plan_for
from .errors import StoreUnavailableError
from .flatten import origin_of
from .futures import MappedFuture, TaskFuture, allow_failure, replace_futures
from .hooks import hooks
from .result_files import CacheMissError, result_path
from .source import code_hash
from .states import State
from .worker_folders import WorkerFolders

if TYPE_CHECKING:
    from .attempt import TaskCall
    from .engine import RunEngine
    from .executor import Outcome
    from .task_runs import TaskRun

_KEY_VERSION = b"labloom-result-key-1"


class _NoKey(Exception):
    """Why a task run has no key (an input that cannot be hashed)."""


@dataclass(frozen=True)
class Reuse:
    """A result a previous run of this flow left behind (for ``labloom retry``)."""

    path: str
    run_id: str
    task_name: str


class ResultPlanner:
    """Per flow run: decides, at each launch, whether a task run loads a stored result
    (cache hit, or reuse of an earlier run's result) or computes and saves one."""

    def __init__(self, engine: RunEngine) -> None:
        self.engine = engine
        self.mode = hooks.persist_mode()  # "all" or "cached"
        self.reuse: dict[str, Reuse] = {}
        self.notes: list[str] = []  # what a retry reran and why, for the CLI
        self._keys: dict[str, str | None] = {}
        self._why_no_key: dict[str, str] = {}
        self._source_hashes: dict[int, str] = {}
        self._loading: dict[str, str] = {}  # task run id -> message for its Cached state
        self._no_load: set[str] = set()
        self._folder: str | None = None
        self._worker_folders = WorkerFolders()

    # --- engine hooks ----------------------------------------------------------------

    def prepare(
        self, tr: TaskRun, call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Adjust one launch; returns the arguments to submit (just the path on a hit)."""
        task = tr.task
        if not (task.cache or self.mode == "all" or self.reuse):
            return args, kwargs
        if task.cache and self._keyed_in_call(tr, call):
            return args, kwargs
        key = self.key_of(tr)
        if key is None:
            if task.cache:
                self._warn(tr, f"not cached: {self._why_no_key.get(tr.id, 'no key')}")
            return args, kwargs
        try:
            self._path(key)  # a results folder that cannot be made: the task runs uncached
        except StoreUnavailableError as exc:
            if task.cache:
                self._warn(tr, "not cached: " + str(exc).removeprefix("[labloom] "))
            return args, kwargs
        path: str | None = None
        if tr.id not in self._no_load:
            path, message = self._lookup(tr, key)
            if path is not None:
                self._loading[tr.id] = message
                call.fn = result_files.load_cached
                if call.record is not None:  # the call gets the result's path, not the inputs:
                    # its params come from the file, logged with the result (load_cached)
                    call.record = replace(call.record, params=())
                self._emit_key(tr, key, path)
                return (path,), {}
        if task.cache or self.mode == "all":
            path = call.save_to = self._path(key)
        self._emit_key(tr, key, path)
        return args, kwargs

    def _keyed_in_call(self, tr: TaskRun, call: TaskCall) -> bool:
        """True when the key needs values that only the call has: it makes the key there."""
        try:
            plan = self._plan(tr)
        except NoKey:
            return False  # key_of() says why
        if not plan.slots and plan.hook is None:
            self._keys[tr.id] = tr.cache_key = digest(plan.base)  # key_of() need not hash again
            return False
        try:
            plan.folder = self._results_folder()
        except StoreUnavailableError as exc:
            self._warn(tr, "not cached: " + str(exc).removeprefix("[labloom] "))
            return True
        plan.expiration = tr.task.cache_expiration
        plan.lookup = tr.id not in self._no_load
        call.keying = plan
        return True

    def keyed(self, tr: TaskRun, key: str | None, path: str | None, message: str) -> None:
        """The call made the key (the engine holds its lock)."""
        self._keys[tr.id] = key
        tr.cache_key = key
        if message:
            self._loading[tr.id] = message
        if key is not None:
            self._emit_key(tr, key, path)

    def finished(self, tr: TaskRun) -> tuple[State, str]:
        """The final state of a successful call: Cached if it only loaded a stored result."""
        # (empty unless a cache hit loads: no id to make for each of a map's children)
        message = self._loading.pop(tr.id, None) if self._loading else None
        if message is not None:
            return State.CACHED, message
        if "://" in tr.worker and tr.cache_key and (tr.task.cache or self.mode == "all"):
            # Computed on a Dask worker and saved there: is it where this process looks?
            key = tr.cache_key
            missing = self._worker_folders.written(tr, lambda: self._path(key))
            if missing:
                self._warn(tr, missing)
        return State.COMPLETED, ""

    def load_failed(self, tr: TaskRun, outcome: Outcome) -> bool:
        """True when a stored result could not be read: the engine then computes instead."""
        if self._loading.pop(tr.id, None) is None:
            return False
        if not isinstance(outcome.error, CacheMissError):
            return False
        self._no_load.add(tr.id)
        self._warn(tr, f"{outcome.error}; computing it again")
        return True

    # --- keys ------------------------------------------------------------------------

    def key_of(self, tr: TaskRun) -> str | None:
        if tr.id in self._keys:
            return self._keys[tr.id]
        import cloudpickle

        key: str | None
        try:
            if tr.task.cache:
                plan = self._plan(tr)
                if plan.slots or plan.hook is not None:
                    return None  # known when its call reports it
                self._keys[tr.id] = tr.cache_key = key = digest(plan.base)
                return key
            token = (self._source_hash(tr), self._inputs(tr))
            data = cloudpickle.dumps(token)
        except (_NoKey, NoKey) as exc:
            key, self._why_no_key[tr.id] = None, str(exc)
        except Exception as exc:
            key = None
            self._why_no_key[tr.id] = (
                f"an input of {tr.name} cannot be hashed ({type(exc).__name__}: {exc}); "
                "pass picklable values, or compute it inside an upstream task"
            )
        else:
            key = hashlib.sha256(_KEY_VERSION + data).hexdigest()[:32]
        self._keys[tr.id] = key
        tr.cache_key = key
        return key

    def _plan(self, tr: TaskRun) -> Any:
        plan = plan_for(tr, self._source_hash(tr), self._stand_in)
        if plan.hook is not None:
            plan.context = CacheContext(tr.task.name, self._source_hash(tr),
                                        self.engine.flow.name, self.engine.id, tr.map_index)
        return plan

    def _stand_in(self, upstream: TaskRun) -> str | None:
        """An upstream's key, where it may stand in for its value: the upstream is cached
        (the user declared its result a function of its key) and never expires."""
        task = upstream.task
        if not task.cache or task.cache_expiration is not None:
            return None
        return self.key_of(upstream)

    def _source_hash(self, tr: TaskRun) -> str:
        fn = tr.task.fn
        known = self._source_hashes.get(id(fn))
        if known is None:
            known = self._source_hashes[id(fn)] = code_hash(fn)
        return known

    def _inputs(self, tr: TaskRun) -> Any:
        node = tr.parent
        if node is None or tr.map_index is None:
            return replace_futures((tr.args, tr.kwargs), self._future_token)
        positional = [self._source_token(source, tr) for source in node.sources]
        keywords = {k: self._source_token(s, tr) for k, s in sorted(node.keywords.items())}
        return (positional, keywords)

    def _source_token(self, source: Any, tr: TaskRun) -> Any:
        # A map child's input, named by where it comes from: never the upstream's data.
        index: int = tr.map_index  # type: ignore[assignment]
        if source.kind == "future":
            return ("labloom-item", self._upstream_key(source.value), index)
        if source.kind == "flat":
            upstream, position = origin_of(tr.parent, index)  # type: ignore[arg-type]
            return ("labloom-item", self._upstream_key(upstream), position)
        if source.kind == "mapped":
            if source.allowed:
                raise _NoKey("an input is wrapped in allow_failure(...), whose value may be an "
                             "error")
            return ("labloom-future", self._upstream_key(source.value.children[index]))
        value = source.value if source.kind == "unmapped" else source.value[index]
        return replace_futures(value, self._future_token)

    def _future_token(self, item: Any) -> Any:
        if isinstance(item, allow_failure):
            raise _NoKey("an input is wrapped in allow_failure(...), whose value may be an error")
        if isinstance(item, MappedFuture):
            return ("labloom-map", [self._upstream_key(c) for c in item.node.children])
        if isinstance(item, TaskFuture):
            return ("labloom-future", self._upstream_key(item.task_run))
        return item

    def _upstream_key(self, upstream: TaskRun) -> str:
        key = self.key_of(upstream)
        if key is None:
            why = self._why_no_key.get(upstream.id)
            raise _NoKey(f"its upstream {upstream.name} has no key: {why}")
        return key

    # --- lookups ---------------------------------------------------------------------

    def _lookup(self, tr: TaskRun, key: str) -> tuple[str | None, str]:
        earlier = self.reuse.get(key)
        if earlier is not None:
            if result_files.exists(earlier.path):
                return earlier.path, f"reused the result of run {earlier.run_id}"
            self.notes.append(
                f"{tr.name}: the result of run {earlier.run_id} is gone ({earlier.path}); "
                "running it again"
            )
        if not tr.task.cache:
            return None, ""
        path = self._path(key)
        saved = result_files.modified(path)
        if saved is None:
            return None, ""
        expiration = tr.task.cache_expiration
        if expiration is not None and time.time() - saved > expiration:
            return None, ""
        return path, "cached result"

    def _results_folder(self) -> str:
        if self._folder is None:
            self._folder = hooks.results_folder()
        return self._folder

    def _path(self, key: str) -> str:
        return result_path(key, self._results_folder())

    def _emit_key(self, tr: TaskRun, key: str, path: str | None) -> None:
        self.engine.emit(ev.TaskRunKeyed(self.engine.id, tr.id, key, path, time.time()))

    def _warn(self, tr: TaskRun, message: str) -> None:
        self.engine.warn(tr, message)
