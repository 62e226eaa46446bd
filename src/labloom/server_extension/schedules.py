"""``schedules`` and the actions pause, resume and run now."""

from __future__ import annotations

from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized

from ..schedule import stored_schedules as sched
from ..schedule.listing import describe_all
from ..store import store_clock
from ..store.reader import RunStore
from . import control, validate
from .base import LabloomHandler


def list_schedules(access: Any, store: RunStore) -> dict[str, Any]:
    with store.database.connect(named_rows=True) as conn:  # slots reads columns by name
        # Both judged by the store's clock, as the schedulers judge: not this server's.
        return {"schedules": describe_all(conn), "scheduler": sched.health(conn)}


def act(access: Any, store: RunStore, name: str, action: str) -> dict[str, Any]:
    with store.database.connect(named_rows=True) as conn:
        schedule = validate.schedule_for(conn, name, action)
        if action in ("pause", "resume"):
            sched.set_paused(conn, name, action == "pause")
            return {"name": name, "paused": action == "pause"}
        from ..schedule.daemon import run_argv

        proc = control.spawn(
            run_argv(schedule), f"schedule-{validate.safe_label(name)}", schedule.workdir,
            {"LABLOOM_SCHEDULE": name, "LABLOOM_SCHEDULED_TIME": repr(store_clock.now(conn))},
        )
        return {"name": name, "started": True, "pid": proc.pid}


class SchedulesHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.in_pool(list_schedules))


class ScheduleActionHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, action: str) -> None:
        result = await self.in_pool(act, name, action)
        self.reply(result, 202 if action == "run" else 200)
