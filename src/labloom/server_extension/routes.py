"""The API's routes, all under ``{base_url}labloom/api/``."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from .base import NotFoundHandler
from .clusters import ClustersHandler
from .experiments import CurvesHandler, ExperimentsHandler, RunExperimentsHandler
from .launch import FlowParamsHandler, FlowsHandler, LaunchHandler
from .runs import (
    CancelHandler,
    DeleteRunsHandler,
    LogsHandler,
    NodeHandler,
    RetryHandler,
    RunHandler,
    RunsHandler,
    TasksHandler,
    TimelineHandler,
)
from .schedules import ScheduleActionHandler, SchedulesHandler

# Anything may arrive here; the handlers validate ids (see ``validate.py``) and answer 404.
_ID = r"(?P<run_id>[^/]+)"


def handlers(base_url: str) -> list[tuple[str, Any]]:
    def at(path: str) -> str:
        return url_path_join(base_url, "labloom", "api", path)

    return [
        (at("runs"), RunsHandler),
        (at("runs/delete"), DeleteRunsHandler),  # before runs/{id}, which would match it
        (at(f"runs/{_ID}"), RunHandler),
        (at(f"runs/{_ID}/nodes/(?P<node_id>[^/]+)"), NodeHandler),
        (at(f"runs/{_ID}/logs"), LogsHandler),
        (at(f"runs/{_ID}/tasks"), TasksHandler),
        (at(f"runs/{_ID}/timeline"), TimelineHandler),
        (at(f"runs/{_ID}/cancel"), CancelHandler),
        (at(f"runs/{_ID}/retry"), RetryHandler),
        (at(f"runs/{_ID}/experiments"), RunExperimentsHandler),
        (at(f"runs/{_ID}/experiments/curves"), CurvesHandler),
        (at("experiments"), ExperimentsHandler),
        (at("schedules"), SchedulesHandler),
        (at("schedules/(?P<name>[^/]+)/(?P<action>pause|resume|run)"), ScheduleActionHandler),
        (at("clusters"), ClustersHandler),
        (at("flows"), FlowsHandler),
        (at("flows/params"), FlowParamsHandler),
        (at("flows/run"), LaunchHandler),
        # last: what no route above matched, "labloom/api" itself included
        (url_path_join(base_url, "labloom", "api") + "(?P<path>/.*)?", NotFoundHandler),
    ]
