"""Failure alerts by email: ``--notify mailto:ops@example.org,oncall@example.org``.

Where Slack is not allowed (many hospitals), an internal SMTP relay is how operators hear of a
failed nightly run. The mail holds what a webhook's body holds (``alerts.failure_payload``: the
flow, the run, the failed task runs and their exception types, never parameter values or
exception messages). The relay comes from the environment of the process that sends (``labloom
serve``, ``labloom run``), read once, at its start (``relay``): every alert of that process goes
through the relay it checked then, and a bad setting is refused then, not at the first failure.
Before, each alert read the environment again (a flow run by `labloom run` that set one of these
sent its alert elsewhere), and a bad ``LABLOOM_SMTP_FROM`` was found by the first alert:

- ``LABLOOM_SMTP_HOST`` (default ``localhost``), ``LABLOOM_SMTP_PORT`` (default 25; 465 with
  ``ssl``, 587 with ``starttls``);
- ``LABLOOM_SMTP_TLS``: ``starttls``, ``ssl`` or empty (none: a relay on the host or network);
- ``LABLOOM_SMTP_USER`` and ``LABLOOM_SMTP_PASSWORD`` to log in (never logged);
- ``LABLOOM_SMTP_FROM`` (default ``labloom@<this host>``): one address, with a name or not.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from ..core.env_numbers import env_number
from ..core.errors import ScheduleError

SCHEME = "mailto:"
# One address: no spaces, commas or line breaks (a header injected through --notify), one @.
_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")
_TLS = ("", "starttls", "ssl")


def is_mail(target: str) -> bool:
    return target.lower().startswith(SCHEME)


def addresses(target: str) -> list[str]:
    """The addresses of ``mailto:a@x.org,b@y.org``; ``ValueError`` unless each is one."""
    found = [part.strip() for part in target[len(SCHEME):].split(",")]
    if not found or not all(_ADDRESS.fullmatch(part) for part in found):
        raise ValueError("--notify mailto: takes email addresses separated by commas "
                         "(mailto:ops@example.org,oncall@example.org)")
    return found


def masked(target: str) -> str:
    """What may be shown: the addresses' domains."""
    domains = sorted({part.rsplit("@", 1)[-1] for part in target[len(SCHEME):].split(",")})
    return SCHEME + ",".join(f"***@{domain}" for domain in domains)


@dataclass(frozen=True)
class Relay:
    """The SMTP relay's settings, as read from the environment."""

    host: str
    port: int
    tls: str  # "", "starttls" or "ssl"
    user: str
    password: str = field(repr=False)  # never shown
    sender: str  # the From header


def read_relay() -> Relay:
    """The relay's settings from the environment now; a ScheduleError naming the fix for a bad
    ``LABLOOM_SMTP_TLS``, ``_PORT`` or ``_FROM``. Before, a bad port raised a bare ValueError
    only when a run failed, and a bad sender failed each alert."""
    tls = os.environ.get("LABLOOM_SMTP_TLS", "").strip().lower()
    if tls not in _TLS:
        raise ScheduleError(f"[labloom] LABLOOM_SMTP_TLS must be starttls, ssl or empty, got "
                            f"{tls!r}")
    port = env_number("LABLOOM_SMTP_PORT", {"ssl": 465, "starttls": 587}.get(tls, 25),
                      "a port number from 1 to 65535", lambda port: 1 <= port <= 65535,
                      ScheduleError, "the SMTP relay's port", whole=True)
    return Relay(host=os.environ.get("LABLOOM_SMTP_HOST", "").strip() or "localhost",
                 port=int(port), tls=tls, user=os.environ.get("LABLOOM_SMTP_USER", ""),
                 password=os.environ.get("LABLOOM_SMTP_PASSWORD", ""), sender=_sender())


def _sender() -> str:
    given = os.environ.get("LABLOOM_SMTP_FROM", "").strip()
    if not given:
        return f"labloom@{socket.gethostname()}"
    header = EmailMessage()
    try:  # as the alert's mail takes it: a line break, or no address, failed each alert
        header["From"] = given
        found = header["From"].addresses
        good = len(found) == 1 and bool(found[0].domain) and not header["From"].defects
    except (ValueError, IndexError):  # (IndexError: the parser's, for "x@")
        good = False
    if not good:
        raise ScheduleError(
            f"[labloom] LABLOOM_SMTP_FROM must be one email address (labloom@lab.example.org, "
            f"or Labloom <labloom@lab.example.org>), got {given!r}: set it to one, or unset it "
            f"for the default (labloom@{socket.gethostname()})")
    return given


_read: Relay | ScheduleError | None = None  # this process's reading (``relay``)


def relay() -> Relay:
    """The relay's settings as this process first read them (or the ScheduleError of a bad
    one, raised again): checked where ``--notify mailto:`` is given (``alerts.check_url``), at
    `labloom serve`'s start (``check_relay_for``, ``relay_refusal``), and used by each alert."""
    global _read
    if _read is None:
        try:
            _read = read_relay()
        except ScheduleError as exc:
            _read = exc
    if isinstance(_read, ScheduleError):
        raise ScheduleError(str(_read))
    return _read


def check_relay_for(conn: Any) -> None:
    """At `labloom serve`'s start: when an alert it may send goes by mail (a schedule's
    ``--notify mailto:``, a `labloom run --notify mailto:` alert kept or wished for a serve), a
    bad ``LABLOOM_SMTP_PORT``, ``_TLS`` or ``_FROM`` raises now, naming the fix, as `labloom
    run` does.
    Before, serve started, and each mail alert failed when a run failed, at night."""
    for query in ("SELECT 1 FROM schedules WHERE LOWER(notify) LIKE ?",
                  "SELECT 1 FROM pending_alerts WHERE LOWER(url) LIKE ?",
                  "SELECT 1 FROM run_alert_wishes WHERE LOWER(url) LIKE ?"):
        if conn.execute(f"{query} LIMIT 1", (f"{SCHEME}%",)).fetchone():
            relay()
            return


def relay_refusal() -> str | None:
    """Why this process cannot mail alerts (a bad ``LABLOOM_SMTP_PORT``, ``_TLS`` or ``_FROM``
    in its environment), or None. `labloom serve` asks it once at its start (its environment does not
    change while it serves) and refuses each schedule added later by mail with it:
    ``check_relay_for`` saw only the schedules there were at its start."""
    try:
        relay()
    except ScheduleError as exc:
        return str(exc).removeprefix("[labloom] ")
    return None


def send(target: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """One attempt, through the relay this process read (``relay``); raises on a connection
    error or a refusal of the relay."""
    settings = relay()
    message = _message(addresses(target), body, settings.sender)
    kind = smtplib.SMTP_SSL if settings.tls == "ssl" else smtplib.SMTP
    with kind(settings.host, settings.port, timeout=timeout) as connection:
        if settings.tls == "starttls":
            connection.starttls(context=ssl.create_default_context())
        if settings.user:
            connection.login(settings.user, settings.password)
        connection.send_message(message)


def _message(to: list[str], body: dict[str, Any], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = (f"[labloom] flow {body.get('flow')!r} run {body.get('run_id') or '-'} "
                          f"{body.get('state')}")
    message["From"] = sender
    message["To"] = ", ".join(to)
    facts = "\n".join(f"{key}: {value}" for key, value in body.items() if key != "text")
    message.set_content(f"{body.get('text', '')}\n\n{facts}\n")
    return message


def reason(exc: BaseException) -> str | None:
    """Why a send failed, without the relay's words (they may echo an address), or None for an
    error that is not the relay's."""
    if isinstance(exc, ScheduleError):  # a bad setting (``read_relay``): its words name the fix
        return str(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "SMTP recipients refused"
    if isinstance(exc, smtplib.SMTPException):
        return type(exc).__name__
    return None
