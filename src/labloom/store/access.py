"""Who may act on whose runs and schedules in a shared store.

Every run records its user (``home.user_name()``: the JupyterHub user where there is one, else
the OS user) and every schedule its owner. Everyone on the store sees everything; cancel, retry
and schedule changes (pause, resume, remove, run now) on another user's run or schedule are
refused unless the acting user is listed in ``LABLOOM_ADMINS`` (comma-separated; in a kernel
also ``c.Labloom.admins``). Records from before users were recorded have no owner: anyone may
act on them.

This keeps a team from stepping on each other's work by mistake; it is not a security boundary.
Everyone who holds the database's credentials can write its tables: where users must be kept
apart, give them separate PostgreSQL roles and grants.

>>> check("retry", "run 1a2b", owner="alice", actor="bob")
Traceback (most recent call last):
...
labloom.core.errors.NotAllowedError: [labloom] bob may not retry run 1a2b: it belongs to alice...
"""

from __future__ import annotations

import os

from ..core.errors import NotAllowedError
from .home import user_name

ADMINS_ENV = "LABLOOM_ADMINS"


def admins() -> set[str]:
    return {name.strip() for name in os.environ.get(ADMINS_ENV, "").split(",") if name.strip()}


def check(action: str, what: str, owner: str | None, actor: str | None = None) -> None:
    """Refuse (``NotAllowedError``, saying why) unless ``actor`` may ``action`` ``what``."""
    actor = actor or user_name()
    if owner is None or owner == actor or actor in admins():
        return
    listed = ", ".join(sorted(admins())) or "nobody"
    raise NotAllowedError(
        f"[labloom] {actor} may not {action} {what}: it belongs to {owner}, and only its owner "
        f"or an admin may; admins are listed in {ADMINS_ENV} (now: {listed})"
    )
