"""What a PostgreSQL store holds of a run, read straight from the server, and the check that
nothing of it was stored twice (a batch written again after its commit landed) or lost."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any


def stored(url: str, run_id: str) -> tuple[list[str], list[tuple[Any, ...]], list[Any]]:
    """The run's log lines, state rows and logged calls, read straight from the server."""
    import psycopg

    from labloom.store.logged_calls import calls_of

    with psycopg.connect(url) as conn:
        lines = [r[0] for r in conn.execute(
            "SELECT text FROM logs WHERE run_id = %s AND task_run_id IS NOT NULL", (run_id,))]
        states = conn.execute("SELECT task_run_id, state, attempt, time FROM task_states "
                              "WHERE run_id = %s", (run_id,)).fetchall()
        calls = [call for row in conn.execute(
            "SELECT id, kind, task_run_id, step, time, data, packed FROM experiment_values "
            "WHERE run_id = %s", (run_id,)) for call in calls_of(*row)]
    return lines, states, calls


def stored_once(direct: str, run_id: str, n: int, refused: int | None = None) -> None:
    """Each of the ``n`` lines ("<word> i"), task runs' three state rows (Pending, Running,
    Completed) and logged calls of run ``run_id`` stored once (the line ``refused`` not at
    all), read from the database at ``direct``."""
    lines, states, calls = stored(direct, run_id)
    seen = Counter(int(text.split()[1]) for text in lines)
    twice = sorted(i for i, count in seen.items() if count > 1)
    lost = sorted(i for i in range(n) if i not in seen and i != refused)
    assert not twice and not lost and refused not in seen, (
        f"{len(twice)} lines stored twice (e.g. {twice[:5]}), {len(lost)} lost "
        f"(e.g. {lost[:5]}){', the refused one stored' if refused in seen else ''}")
    assert len(lines) == n - (refused is not None), len(lines)  # no line of another number
    doubled = [row for row, count in Counter(states).items() if count > 1]
    assert not doubled, f"{len(doubled)} state rows stored twice, e.g. {doubled[0]}"
    kinds = Counter(state for _, state, _, _ in states)
    assert kinds == {"Pending": n, "Running": n, "Completed": n}, kinds
    per_task = Counter(json.dumps(call[2], sort_keys=True) for call in calls)
    assert len(calls) == n and set(per_task.values()) == {1}, (len(calls),
                                                              per_task.most_common(3))
