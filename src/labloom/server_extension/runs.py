"""``runs``, ``runs/{id}``, its nodes and logs, and the actions on runs: cancel, retry, delete."""

from __future__ import annotations

from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from tornado import web

from . import control, deleting, queries, validate
from .base import ErrorAnswer, LabloomHandler


class RunsHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """Runs newest first. Filters: flow, state, origin, user, host, since, until (epoch
        seconds, a date or time, or a time ago: ``7d``); paging: limit, and before=<the
        previous page's ``next``>."""
        filters: dict[str, Any] = {
            "flow": self.get_argument("flow", None) or None,
            "state": validate.run_state(self.get_argument("state", None)),
            "origin": self.get_argument("origin", None) or None,
            "user": self.get_argument("user", None) or None,
            "host": self.get_argument("host", None) or None,
            "since": self.time_argument("since"),
            "until": self.time_argument("until"),
            "before": None,
        }
        before = self.get_argument("before", None)
        if before:
            filters["before"] = validate.run_id(before)
        limit = self.int_argument("limit", 50, 0, queries.MAX_PAGE)
        self.reply(await self.in_pool(queries.list_runs, filters, limit))


class RunHandler(LabloomHandler):
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """The run: parameters, executor, host, dashboard, its graph, node states, header, a
        ``cursor`` and (unless ``tasks=0``) its first task runs. With ``since=<cursor>``: only
        what changed since that answer (and ``lines`` new log lines, 0 to 5,000)."""
        with_tasks = self.bool_argument("tasks", True)
        since = validate.cursor(self.get_argument("since", None))
        lines = self.int_argument("lines", 200, 0, queries.MAX_LOG_LINES)
        detail = await self.in_pool(
            queries.run_detail, validate.run_id(run_id), with_tasks, since, lines
        )
        self.reply_for_run(detail)

    @tornado.web.authenticated
    @authorized
    async def delete(self, run_id: str) -> None:
        """Delete an ended run with its rows and the result files no other run names, by the
        rules of ``labloom delete``: 409 for a run going on (or whose process may still
        write), 403 for another user's, each saying why."""
        self.lane = "list"  # an action: it queues with the panel's reads, not the run tabs'
        answer = await self.in_pool(deleting.delete_one, validate.run_id(run_id))
        self.pushed_deleted([run_id])
        self.reply(answer)


class DeleteRunsHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """``{"runs": [id, ...]}``: the runs the panel ticked. Those that may go go; ``kept``
        says per run why one stayed (status and message, as ``DELETE runs/{id}`` would)."""
        body = self.get_json_body()
        ids = body.get("runs") if isinstance(body, dict) else None
        if (not isinstance(ids, list) or not ids
                or not all(isinstance(i, str) and validate.is_run_id(i) for i in ids)):
            raise web.HTTPError(400, 'the body must be {"runs": [run id, ...]}, at least one')
        if len(ids) > deleting.MAX_RUNS:
            raise web.HTTPError(400, f"at most {deleting.MAX_RUNS} runs at once")
        try:
            answer = await self.in_pool(deleting.delete_many, ids)
        except ErrorAnswer as cut:  # the store's server went away midway: some were deleted
            self.pushed_deleted(cut.fields.get("deleted", []))
            raise
        self.pushed_deleted(answer["deleted"])
        self.reply(answer)


class TasksHandler(LabloomHandler):
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """Task runs a page at a time: ``after`` (the previous page's ``next``), ``limit``,
        ``state``."""
        after = self.int_argument("after", 0, 0, 2**62)
        limit = self.int_argument("limit", 500, 1, queries.MAX_TASK_PAGE)
        state = validate.task_state(self.get_argument("state", None))
        page = await self.in_pool(queries.task_page, validate.run_id(run_id), after, limit, state)
        self.reply_for_run(page)


class NodeHandler(LabloomHandler):
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, node_id: str) -> None:
        page = self.int_argument("page", 0, 0, 10_000_000)
        detail = await self.in_pool(
            queries.node_detail, validate.run_id(run_id), validate.node_id(node_id), page
        )
        if detail is None:
            raise web.HTTPError(404, "no such run or node")
        self.reply(detail)


class LogsHandler(LabloomHandler):
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """Log lines from a cursor: ``task`` (a task run id, ``name`` or ``name[i]``),
        ``after`` (the previous answer's ``next``), ``limit``."""
        task = self.get_argument("task", None) or None
        after = self.int_argument("after", 0, 0, 2**62)
        limit = self.int_argument("limit", 1000, 1, queries.MAX_LOG_LINES)
        page = await self.in_pool(
            queries.log_page, validate.run_id(run_id), task, after, limit
        )
        self.reply_for_run(page)


class TimelineHandler(LabloomHandler):
    lane = "run"

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """Task runs by lane (thread, Dask worker) and time: bars, or buckets when dense."""
        answer = await self.in_pool(queries.run_timeline, validate.run_id(run_id))
        self.reply_for_run(answer)


class CancelHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        """Ask the run's own process (a kernel, ``labloom run``, ``labloom serve``'s child) to
        cancel it; it acts within about a second. 202: requested; 409: already ended."""
        result = await self.in_pool(control.cancel, validate.run_id(run_id))
        self.reply(result, 202)


class RetryHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        """Rerun what failed in a new process (``labloom retry``), reusing what completed."""
        result = await self.in_pool(control.retry, validate.run_id(run_id))
        self.reply(result, 202)
