"""The private internals of ``psycopg_pool`` labloom uses, each with its fallback.

- ``pool_name_of``: a pooled connection's ``_pool`` (the pool that lent it), to know a warning
  that names one of labloom's connections ("discarding closed connection: <psycopg.Connection
  [BAD] ...>") as labloom's own. Fallback: None (the warning is shown).
"""

from __future__ import annotations

from typing import Any


def pool_name_of(connection: Any) -> str | None:
    """The name of the pool that lent ``connection``, if it is a pooled connection."""
    name = getattr(getattr(connection, "_pool", None), "name", None)
    return name if isinstance(name, str) else None
