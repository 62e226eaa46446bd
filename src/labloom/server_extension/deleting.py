"""``DELETE runs/{id}`` and ``POST runs/delete``: the Flows panel deletes runs by the rules of
``labloom delete`` (``store/pruning.py``): ended runs only, not one whose process may still
write, another user's only by an admin; with them the result files no run left names."""

from __future__ import annotations

from typing import Any

from tornado import web

from ..core.errors import NotAllowedError, StoreUnavailableError
from ..store import access as permissions
from ..store.pruning import Pruned, delete_runs
from ..store.reader import RunRecord, RunStore
from .queries import exact_run

MAX_RUNS = 500  # per request: the panel's largest page


def delete_one(access: Any, store: RunStore, run_id: str) -> dict[str, Any]:
    """200 with what was deleted; else the status and reason of ``refusal``."""
    run = exact_run(store, run_id)
    if run is None:
        raise web.HTTPError(404, "no such run")
    pruned = delete_runs(store, [run])
    access.across.forget(pruned.deleted)
    if run_id not in pruned.deleted:
        status, message = refusal(run, pruned)
        raise web.HTTPError(status, message)
    return {"run_id": run_id, "deleted": True, **_counts(pruned)}


def delete_many(access: Any, store: RunStore, run_ids: list[str]) -> dict[str, Any]:
    """Each run that may go goes; ``kept`` says, per run, the status and reason it stayed."""
    runs: list[RunRecord] = []
    kept: list[dict[str, Any]] = []
    for run_id in dict.fromkeys(run_ids):  # named twice: asked once
        run = exact_run(store, run_id)
        if run is None:
            kept.append({"id": run_id, "status": 404, "message": "no such run"})
        else:
            runs.append(run)
    try:
        pruned = delete_runs(store, runs)
    except StoreUnavailableError as exc:  # the server went away midway: some may be gone
        access.across.forget((exc.done or {}).get("deleted", []))
        raise
    access.across.forget(pruned.deleted)
    for run in runs:
        if run.id not in pruned.deleted:
            status, message = refusal(run, pruned)
            kept.append({"id": run.id, "status": status, "message": message})
    return {"deleted": pruned.deleted, "kept": kept, **_counts(pruned)}


def refusal(run: RunRecord, pruned: Pruned) -> tuple[int, str]:
    """Why ``delete_runs`` kept ``run``: an HTTP status and a sentence naming what to do."""
    if run.id in pruned.not_allowed:
        try:
            permissions.check("delete", f"run {run.id}", run.user)
        except NotAllowedError as exc:
            return 403, str(exc)
        return 403, f"run {run.id} belongs to another user"  # an admin list changed meanwhile
    if run.id in pruned.may_live:
        return 409, f"run {run.id} is kept: {pruned.may_live[run.id]}"
    return 409, (f"run {run.id} is still {run.state}: only an ended run is deleted; cancel it "
                 "or wait for it to end")


def _counts(pruned: Pruned) -> dict[str, Any]:
    files = pruned.files
    return {"task_runs": pruned.task_runs,
            "result_files": {"deleted": files.deleted, "bytes": files.freed,
                             "kept_shared": files.shared, "errors": files.errors[:20]}}
