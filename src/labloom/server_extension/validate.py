"""Ids and names from URLs are checked before they reach a query (which binds them anyway)."""

from __future__ import annotations

import re

from tornado import web

from ..core.errors import ScheduleError
from ..core.states import State
from ..schedule.stored_schedules import check_name
from .graphs import Cursor

_RUN_ID = re.compile(r"^[0-9a-f]{4,64}$")
_NODE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
STATES = ("Pending", "Running", "Completed", "Failed", "Cancelled", "Crashed")
TASK_STATES = tuple(state.value for state in State if state is not State.CRASHED)


def run_id(text: str) -> str:
    if not _RUN_ID.match(text):
        raise web.HTTPError(404, "no such run")
    return text


def node_id(text: str) -> str:
    if not _NODE_ID.match(text):
        raise web.HTTPError(404, "no such node")
    return text


def schedule_name(text: str) -> str:
    """The rule ``schedule add`` applies: every name it accepts reaches its schedule here."""
    try:
        return check_name(text)
    except ScheduleError:
        raise web.HTTPError(404, "no such schedule") from None


def run_state(text: str | None) -> str | None:
    if text in (None, ""):
        return None
    if text not in STATES:
        raise web.HTTPError(400, f"state must be one of {', '.join(STATES)}")
    return text


def task_state(text: str | None) -> str | None:
    if text in (None, ""):
        return None
    if text not in TASK_STATES:
        raise web.HTTPError(400, f"state must be one of {', '.join(TASK_STATES)}")
    return text


def cursor(text: str | None) -> Cursor | None:
    if text in (None, ""):
        return None
    try:
        return Cursor.parse(text)
    except ValueError:
        raise web.HTTPError(
            400, "since must be the cursor of a previous answer; leave it out for the whole run"
        ) from None


def safe_label(text: str) -> str:
    """A schedule name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]
