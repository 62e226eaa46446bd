"""A run's log lines, the lines it did not keep, and its graph's nodes, as the store's readers
give them (``reader.RunStore.logs``, ``log_page``, ``log_cuts``, ``nodes``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class LogEntry:
    task_run_id: str | None
    task: str
    level: int
    time: float
    text: str
    id: int = 0  # the line's row: a cursor for reading on from here (``log_page``)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NodeRecord:
    """A node of a run's graph: one task call, or one map whatever its width."""

    id: str
    name: str
    kind: str
    upstream: list[str]


@dataclass
class LogCut:
    task_run_id: str
    task: str
    kept: int
    cut: int
