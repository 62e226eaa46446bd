"""Every schedule as plain data: what ``labloom schedule list`` (and its ``--json``) and
``GET schedules`` (the Flows panel) show of it, judged by the store's clock."""

from __future__ import annotations

from typing import Any

from ..store import store_clock
from ..store.db import Conn
from ..store.reader import retries_of
from . import alert_outbox, refusals
from .alerts import mask_url
from .stored_schedules import get_all, iso, next_run, slots


def describe_all(conn: Conn) -> list[dict[str, Any]]:
    """Every schedule as plain data (see docs/rest-api.md, ``GET schedules``)."""
    rows: list[dict[str, Any]] = []
    now = store_clock.now(conn)  # the time slots are claimed by, whichever host reads
    alerts = alert_outbox.by_schedule(conn)
    refused = refusals.live(conn, now)
    for s in get_all(conn):
        history = slots(conn, s.name)
        last = next((h for h in reversed(history) if h["status"] != "skipped"), None)
        zone, problem = s.timezone, None
        try:  # another host sharing the store may have added it with a zone this one lacks
            upcoming = None if s.paused else iso(next_run(conn, s, now), zone)
        except Exception as exc:
            upcoming, zone = None, None
            problem = f"this host cannot compute its times ({type(exc).__name__}: {exc})"
        rows.append({
            "name": s.name, "target": s.target, "when": s.spec, "cron": s.cron,
            "every": s.every, "timezone": s.timezone, "paused": s.paused,
            "catchup": s.catchup, "allow_overlap": s.overlap, "next_run": upcoming,
            "problem": problem, "refused_by": None if s.paused else _refused(refused.get(s.name), zone),
            "last_run": None if last is None else {
                "slot": iso(last["slot_time"], zone), "status": last["status"],
                "run_id": last["run_id"], "retries": [  # `labloom retry` of it, oldest first
                    {"id": rid, "state": state} for rid, state in retries_of(conn, last["run_id"])],
            },
            "notify": mask_url(s.notify) or None,
            **_alerts(alerts.get(s.name, {}), zone),
            "executor": s.executor, "address": s.address, "cluster": s.cluster,
            "owner": s.owner,
        })
    return rows


def _refused(found: list[dict[str, Any]] | None,
             zone: str | None) -> list[dict[str, Any]] | None:
    """``refused_by``: the live `labloom serve` processes that will not run the schedule, each
    with why (naming the fix) and since when; null when none does."""
    return None if not found else [{**r, "since": iso(r["since"], zone)} for r in found]


def _alerts(found: dict[str, Any], zone: str | None) -> dict[str, Any]:
    """``pending_alerts``: alerts still to send (a webhook down: retried, by this or the next
    ``serve``); ``undelivered_alert``: those given up since the schedule's last delivered
    alert, the latest's when and why. Both null when there are none."""
    pending, given_up = found.get("pending"), found.get("undelivered")
    return {
        "pending_alerts": None if pending is None else {
            "count": pending["alerts"], "attempts": pending["attempts"],
            "last_error": pending["last_error"], "next_try": iso(pending["next_try"], zone),
        },
        "undelivered_alert": None if given_up is None else {
            "at": iso(given_up["given_up"], zone), "reason": given_up["reason"],
            "run_id": given_up["run_id"], "state": given_up["state"],
            "attempts": given_up["attempts"], "count": given_up["alerts"],
            "since": iso(given_up["first_given_up"], zone),
        },
    }
