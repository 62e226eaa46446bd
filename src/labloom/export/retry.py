"""Restart a recorded run from another process: the one retry service, called by ``labloom
retry RUN_ID`` (``retry_run``) and by the server extension's ``POST runs/{id}/retry``
(``retry_source``, then ``labloom retry`` in a new process). It sits above the store: the
store records runs, this loads a run's target and runs the flow.

The flow is loaded again from the file recorded with the run and run with the same
parameters, as a new run pointing back to the old one (``retry_of``). Each task run whose key
(source and inputs, see ``core/cache_keys.py``) matches a task run that completed in the old run loads
that persisted result (state Cached) instead of running; everything else runs: what failed,
what never ran, and any upstream whose result file is gone or was never persisted. A fix to a
task's source changes its key and the keys downstream, so exactly the fixed part reruns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..core.errors import TargetError
from ..core.kept_parameters import ENV, OVER, is_summary
from ..core.results import Reuse
from ..core.secrets import HIDDEN
from ..store import access, open_store
from ..store.storable import is_described
from .run_targets import load_recorded

_DONE = ("Completed", "Cached")
# How an older writer escaped a lone surrogate or NUL, as JSON text: ``\\udce9``, ``\\x00``.
_ESCAPE = re.compile(r"\\\\(ud[89a-f][0-9a-f]{2}|x00)")


def retry_source(target: dict[str, Any]) -> str | None:
    """The file a retry of a run with this recorded ``target`` loads its flow from: the
    notebook of a ``%%flow`` cell (exported afresh), else the flow's module; None where its
    code is in no file (a cell without ``%%flow``, a function defined in a function)."""
    notebook = target.get("notebook")
    if notebook:
        return str(notebook)
    file = None if target.get("note") else target.get("file")
    return str(file) if file else None


def ran_on(record: Any, declared: Any) -> Any:
    """What a retry runs on when not told: the scheduler the run was given (``labloom run
    --address``, a schedule's address, ``Flow.run(executor=DaskExecutor(ADDRESS))``), else the
    kind of executor it ran on. The flow's declared executor may be local threads: a sweep
    retried from the Flows panel would then run on the Jupyter server's machine. A run on a
    cluster profile (``--cluster NAME``) starts that profile's cluster again, as the settings
    hold it now. A cluster started for the run from options in the flow's code, an embedded
    one, or one the flow's code makes (``DaskExecutor(cluster=LocalCluster())``): the declared
    executor when it is Dask too, as it makes that cluster again."""
    from ..core.executor import Executor

    kind = str(record.executor or "").partition("(")[0]
    facts = record.metadata or {}
    if isinstance(declared, Executor):
        declared_kind, declared_address = declared.name, getattr(declared, "address", None)
    else:
        declared_kind = declared or "threads"
        declared_address = declared if declared_kind.startswith(("tcp://", "tls://")) else None
        if declared_address or declared_kind.startswith("cluster:"):
            declared_kind = "dask"
    address = facts.get("address")
    if facts.get("profile"):
        return f"cluster:{facts['profile']}"
    if "cluster_class" in facts:
        return declared
    if kind == "dask" and address and facts.get("cluster") != "embedded LocalCluster":
        if declared_address == address or (  # a cluster or client object it was given
                getattr(declared, "source", None) == "given" and declared_address is None):
            return declared  # the same scheduler, or a cluster the flow's own code makes
        return str(address)
    if kind in ("local", "threads", "dask") and kind != declared_kind:
        return kind
    return declared


def replay_refusal(record: Any, escaped: bool = False) -> str | None:
    """Why the run ``record`` cannot be replayed from its stored parameters, or None. Said by
    ``labloom retry`` and, before any process starts, by the REST retry (the Lab's button).
    ``escaped``: its log says its parameters were stored escaped (``parameters_escaped``)."""
    params = record.parameters
    odd = [k for k, v in params.items() if escaped and _ESCAPE.search(json.dumps(v))]
    if odd:
        return (
            f"run {record.id}: parameter(s) {', '.join(odd)} held text the store could not "
            "hold as it was (a lone surrogate, as a file name that is not UTF-8 gives, or NUL) "
            "and a labloom before session 46 stored it backslash-escaped, so a replay would "
            "run with other text; run the flow again with the value (`labloom run ... "
            "--param`, or call it): runs recorded now keep such text exactly"
        )
    summarised = [k for k, v in params.items() if is_summary(v)]
    if summarised:
        limit = params[summarised[0]].get(OVER)
        names = (f"parameter {summarised[0]} was" if len(summarised) == 1
                 else f"parameters {', '.join(summarised)} were")
        source = retry_source(record.target or {}) or "FILE.py"
        return (
            f"run {record.id}: {names} kept as a summary (type and length only: over "
            f"{ENV}={limit} bytes of JSON, or not JSON at all), not the value, so the run "
            "cannot be replayed from the store; run the flow with the value (`labloom run "
            f"{source}:{record.flow_name} --param {summarised[0]}=...`, or call it in the "
            "notebook; `run.retry()` in the process that ran it still has the value), or "
            f"raise {ENV} for the runs to come"
        )
    opaque = [k for k, v in params.items() if is_described(v)]
    if opaque:
        return (
            f"run {record.id}: parameter(s) {', '.join(opaque)} were not JSON values, so only "
            "what they were was stored (a type, a shape), not the values; run the flow again "
            "with `labloom run ... --param`"
        )
    hidden = [k for k, v in params.items() if v == HIDDEN]
    if hidden:
        return (
            f"run {record.id}: parameter(s) {', '.join(hidden)} were not stored (secret, or "
            "LABLOOM_STORE_PARAMETERS=0); run the flow again with `labloom run ... --param`"
        )
    return None


def retry_run(
    run_id: str, executor: Any = None,
    load: Callable[[dict[str, Any], str], Any] = load_recorded,
) -> tuple[Any, list[str]]:
    """Rerun ``run_id``'s failed part; returns the new ``FlowRun`` (finished) and notes on
    what had to rerun although it completed before. Raises ``KeyError`` for an unknown id and
    ``TargetError`` when the run cannot be retried from here. ``load`` turns the recorded
    target into the ``Flow`` (its file, or its notebook exported afresh)."""
    from ..core.executor import Executor
    from ..core.flow_run import FlowRun
    from ..core.hooks import hooks

    with open_store() as store:
        record = store.get_run(run_id, counts=False)  # its parameters, to replay them
        if record is None:
            raise KeyError(run_id)
        tasks = store.task_runs(record.id)
        escaped = store.parameters_escaped(record.id)
    access.check("retry", f"run {record.id}", record.user)
    if record.state in ("Pending", "Running"):
        raise TargetError(
            f"run {record.id} is still {record.state} (pid {record.pid} on {record.host}); "
            "wait for it or cancel it first"
        )
    flow = load(record.target or {}, record.id)
    refusal = replay_refusal(record, escaped)
    if refusal:
        raise TargetError(refusal)
    notes: list[str] = []
    reuse: dict[str, Reuse] = {}
    for tr in tasks:
        if tr.state not in _DONE:
            continue
        if tr.cache_key and tr.result_path:
            reuse[tr.cache_key] = Reuse(tr.result_path, record.id, tr.name)
        elif not tr.left_map:  # (one that left its map is history: nothing to run again)
            notes.append(f"{tr.name}: its result was not persisted in run {record.id}; "
                         "it runs again if needed")
    choice = executor if executor is not None else ran_on(record, flow.executor)
    run = FlowRun(
        flow, flow.bind(**record.parameters), hooks.resolve_executor(choice, None), origin="retry",
        owns_executor=not isinstance(choice, Executor), reuse=reuse,
    )
    run.metadata["retry_of"] = record.id
    run.start()
    return run, notes + run.notes
