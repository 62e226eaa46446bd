"""Failure alerts: a Slack-compatible JSON post to a webhook the user configured (``--notify``),
or an email (``--notify mailto:...``, ``mail_alerts.py``).

The body names the flow, the run, the failed task runs and their exception types; never
parameter values, task data or exception messages, which can hold data. Posting happens after
the run, with retries and backoff, so an alert never fails a run. Each alert is kept in the
store until it is delivered (``alert_outbox``): ``labloom run``'s is posted by the command before
it exits (``run_alerts``), what that could not deliver and ``labloom serve``'s by a serve
(``alert_sender``). The URL is a secret (webhook URLs carry their token): it is never logged or printed, see ``mask_url``.
"""

from __future__ import annotations

import json
import logging
import shlex
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..core.states import State
from . import mail_alerts

log = logging.getLogger("labloom")

DEFAULT_DELAYS = (1.0, 4.0, 15.0)  # waits before the 2nd, 3rd and 4th attempt


def check_url(url: str) -> str:
    """``url`` if an alert can be posted (or mailed) to it; else ValueError naming the fix,
    never the value (a webhook URL is a secret). Checked where it is given: a URL that cannot
    work must not wait for the first failure at night to say so."""
    if not url.strip():
        # `--notify "$SLACK_URL"` with the variable unset (cron, a systemd unit): taken as
        # no --notify, it scheduled a flow whose failures alerted nobody.
        raise ValueError("--notify is empty (a variable not set where `--notify \"$VAR\"` "
                         "was typed?): give the webhook URL or mailto:ADDRESS, or leave "
                         "--notify out for no alerts")
    if mail_alerts.is_mail(url):
        mail_alerts.addresses(url)  # raises, naming the form
        mail_alerts.relay()  # a bad LABLOOM_SMTP_PORT, _TLS or _FROM: now, not at an alert
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise ValueError("--notify has a host or port no request can reach (a port past "
                         "65535, an unclosed [ of an IPv6 address); check the URL (the value "
                         "is not shown)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("--notify takes an http(s) webhook URL or mailto:ADDRESS[,ADDRESS] "
                         "(the value is not shown)")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("--notify holds a space, line break or control character (cut from "
                         "a wrapped line?): no request can carry it; paste the URL again, "
                         "quoted (the value is not shown)")
    return url


def mask_url(url: str | None) -> str:
    """What may be shown of a webhook URL: its scheme and host (of mailto: the domains)."""
    if not url:
        return ""
    if mail_alerts.is_mail(url):
        return mail_alerts.masked(url)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/***"


def failure_payload(
    flow: str,
    run_id: str | None,
    state: str,
    failed_tasks: Sequence[tuple[str, str]] = (),
    error: str = "",
    schedule: str | None = None,
    log: str | None = None,
) -> dict[str, Any]:
    """The alert body. ``failed_tasks`` holds (task run name, state or exception type);
    ``log`` is the file on the scheduler's host holding the run process's output (where the
    reason is when no run was made: the alert itself carries no exception messages)."""
    names = [name for name, _ in failed_tasks]
    summary = error or (
        "; ".join(f"{name}: {kind}" for name, kind in failed_tasks[:5])
        + (f"; and {len(failed_tasks) - 5} more" if len(failed_tasks) > 5 else "")
    )
    where = f" (schedule {schedule!r})" if schedule else ""
    run_text = f"run {run_id}" if run_id else "a run"
    text = f"labloom: flow {flow!r}{where} {run_text} {state}"
    if summary:
        text += f": {summary}"
    if run_id:
        text += f". Details: labloom show {run_id}"
        # The failed task's own lines, the command to copy from the alert at 3 a.m.: `show`
        # holds its traceback, not what it printed before it failed.
        first = next((name for name, kind in failed_tasks if kind != "UpstreamFailed"), None)
        if first:
            text += f"; its logs: labloom logs {run_id} --task {shlex.quote(first)}"
    if log:
        text += f". Output: {log} on {socket.gethostname()}"
    body: dict[str, Any] = {
        "text": text,
        "flow": flow,
        "run_id": run_id,
        "state": state,
        "failed_tasks": names,
        "error": summary,
        "host": socket.gethostname(),
    }
    if schedule:
        body["schedule"] = schedule
    if log:
        body["log"] = log
    return body


def run_summary(run: Any) -> tuple[list[tuple[str, str]], str]:
    """Failed task runs of a finished ``FlowRun`` as (name, kind), and an error summary that
    carries exception types only."""
    failed, error = _run_summary(run)
    attempts = getattr(run, "attempt", 1)
    if attempts > 1 and run.state is State.FAILED:  # @flow(retries=...): each one failed
        error = f"{error or 'failed'} (after {attempts} attempts)"
    return failed, error


def _run_summary(run: Any) -> tuple[list[tuple[str, str]], str]:
    failed: list[tuple[str, str]] = []
    for tr in run.tasks:
        if tr.state in (State.FAILED, State.UPSTREAM_FAILED, State.CANCELLED, State.CRASHED) \
                and not tr.left_map:  # (a child that left its map is history)
            kind = type(tr.error).__name__ if tr.error is not None else tr.state.value
            failed.append((tr.name, kind))
    if getattr(run, "timed_out", False):  # its tasks were cancelled by it: not the reason
        return failed, f"timed out after {run.flow.timeout:g}s (@flow(timeout=...))"
    body_error = getattr(run, "body_error", None)
    if body_error is not None:
        from ..core.flow_retries import NOT_STARTED  # (only here: serve need not load it)

        if (getattr(run, "message", None) or "").startswith(NOT_STARTED):
            return failed, f"{NOT_STARTED} ({type(body_error).__name__})"
        return failed, f"the flow body raised {type(body_error).__name__}"
    hard = [item for item in failed if item[1] != State.UPSTREAM_FAILED.value]
    if hard:
        first = hard[0]
        return failed, f"{len(hard)} task run(s) failed; first: {first[0]} ({first[1]})"
    if run.state is State.CANCELLED:
        return failed, "the run was cancelled"
    return failed, ""


def post(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """One attempt; raises on a network error or a status other than 2xx (for mailto:, a relay
    that cannot be reached or refuses the mail)."""
    if mail_alerts.is_mail(url):
        mail_alerts.send(url, body, timeout)
        return
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def _reason(exc: BaseException) -> str:
    # Never str(exc) of a URLError: it can echo the URL.
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, TimeoutError) or (isinstance(exc, urllib.error.URLError)
                                         and isinstance(exc.reason, TimeoutError)):
        return "no answer in time (LABLOOM_NOTIFY_TIMEOUT: 10 s by default)"
    if isinstance(exc, urllib.error.URLError):
        return f"connection failed ({type(exc.reason).__name__})"
    said = mail_alerts.reason(exc)  # before OSError: smtplib's errors are OSErrors
    if said is not None:
        return said
    if isinstance(exc, OSError):  # an SMTP relay not reached
        return f"connection failed ({type(exc).__name__})"
    return type(exc).__name__


def try_post(url: str, body: dict[str, Any], timeout: float = 10.0) -> str | None:
    """One attempt now: None once taken, else why not, never naming the URL (an HTTP status
    says what: 404 or 410, a token revoked or a channel gone; 403, not allowed)."""
    try:
        post(url, body, timeout)
        return None
    except Exception as exc:
        reason = _reason(exc)
    hints = {"HTTP 403": "the webhook does not allow this sender",
             "HTTP 404": "no such webhook: a token mistyped or revoked?",
             "HTTP 410": "the webhook or its channel is gone"}
    return f"{reason} ({hints[reason]})" if reason in hints else reason


def delays_from_env(text: str | None) -> tuple[float, ...]:
    """``LABLOOM_NOTIFY_DELAYS="0.2,0.5"`` shortens the backoff (tests, impatient users)."""
    if not text:
        return DEFAULT_DELAYS
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        return DEFAULT_DELAYS
