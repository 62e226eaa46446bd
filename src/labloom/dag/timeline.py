"""A run's timeline: its task runs laid out by where they ran (one lane per thread or Dask worker
thread) and when, as the Lab run tab (``GET runs/{id}/timeline``) and the cell widget (a
``timeline`` message) draw it with the one renderer (js/src/timeline.js).

The answer is bounded whatever the run's size: up to ``MAX_BARS`` task runs come as bars; past
that (a sweep of 100,000 children) each lane is cut into time buckets and each bucket says how
many task runs of each state it held and for how many seconds (``busy``), so the view shows
where lanes sat idle, which is what "why did my sweep take 30 minutes" asks. Times are seconds
from the first start, so the numbers stay short. A map's child that left its map
(``TaskRunLeftMap``) keeps its bar, marked ``left``: history, where and when it ran; in a
bucket it is counted apart (``left_counts``, ``left_busy``), not as a child of its map.

>>> timeline([Span("t1", "f", "MainThread", "Completed", 10.0, 12.0)], now=20.0)["bars"]
[{'lane': 0, 'id': 't1', 'name': 'f', 'state': 'Completed', 'start': 0.0, 'end': 2.0}]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

MAX_BARS = 3000  # more task runs than this and the lanes are drawn as buckets
MAX_BUCKETS = 200  # per lane, at most
MAX_CELLS = 6000  # lanes x buckets, at most: about 400 kB of JSON with every state present
# (and as much again at most for the children that left their map, counted apart: rare)
UNKNOWN_LANE = "unknown"  # task runs stored before lanes were (schema 8), or never started


class Span(NamedTuple):
    """One task run as the timeline needs it; ``end`` None while it runs."""

    id: str
    name: str
    lane: str
    state: str
    start: float | None
    end: float | None
    left: bool = False  # a map's child that left its map (``TaskRunLeftMap``): history


def timeline(spans: Iterable[Span], now: float, max_bars: int = MAX_BARS) -> dict[str, Any]:
    """The timeline of ``spans`` (see the module's docstring); ``now`` ends the running ones."""
    placed: list[Span] = []
    unstarted = 0
    for span in spans:
        if span.start is None:
            unstarted += 1  # pending, cached or skipped: it never ran, it has no bar
        else:
            placed.append(span)
    lanes = sorted({span.lane or UNKNOWN_LANE for span in placed}, key=_lane_order)
    index = {lane: i for i, lane in enumerate(lanes)}
    answer: dict[str, Any] = {
        "lanes": lanes, "total": len(placed), "unstarted": unstarted,
        "left": sum(span.left for span in placed),  # of ``total``: the summary says so
        "start": None, "end": None, "mode": "bars", "bars": [], "buckets": None,
    }
    if not placed:
        return answer
    t0 = min(span.start for span in placed if span.start is not None)
    t1 = max(_end(span, now) for span in placed)
    answer["start"], answer["end"] = t0, t1
    if len(placed) <= max_bars:
        answer["bars"] = [_bar(span, index, t0, now) for span in placed]
        return answer
    answer["mode"] = "buckets"
    answer["buckets"] = _buckets(placed, index, t0, t1, now)
    return answer


def _bar(span: Span, index: dict[str, int], t0: float, now: float) -> dict[str, Any]:
    assert span.start is not None
    bar = {"lane": index[span.lane or UNKNOWN_LANE], "id": span.id, "name": span.name,
           "state": span.state, "start": round(span.start - t0, 6),
           "end": round(_end(span, now) - t0, 6)}
    if span.left:  # only then: the others' bars keep their bytes (up to MAX_BARS of them)
        bar["left"] = True
    return bar


def _buckets(
    placed: list[Span], index: dict[str, int], t0: float, t1: float, now: float
) -> dict[str, Any]:
    count = max(1, min(MAX_BUCKETS, MAX_CELLS // max(1, len(index))))
    width = max(t1 - t0, 1e-6) / count
    # (lane, bucket) -> left or not -> (counts, busy) by state: a child that left its map is
    # counted apart, else a bucket said "40 Completed" of a map the DAG counts 30 of.
    cells: dict[tuple[int, int], dict[bool, tuple[dict[str, int], dict[str, float]]]] = {}
    for span in placed:
        assert span.start is not None
        lane = index[span.lane or UNKNOWN_LANE]
        start, end = span.start - t0, _end(span, now) - t0
        first = min(count - 1, int(start / width))
        last = min(count - 1, int(end / width))
        for bucket in range(first, last + 1):
            counts, busy = cells.setdefault((lane, bucket), {}).setdefault(span.left, ({}, {}))
            counts[span.state] = counts.get(span.state, 0) + 1
            overlap = min(end, (bucket + 1) * width) - max(start, bucket * width)
            busy[span.state] = busy.get(span.state, 0.0) + max(0.0, overlap)
    return {
        "width": width,
        "count": count,
        "cells": [_cell(lane, bucket, parts) for (lane, bucket), parts in sorted(cells.items())],
    }


def _cell(
    lane: int, bucket: int, parts: dict[bool, tuple[dict[str, int], dict[str, float]]]
) -> dict[str, Any]:
    cell: dict[str, Any] = {"lane": lane, "bucket": bucket}
    for left, prefix in ((False, ""), (True, "left_")):
        if left in parts or not left:  # ``left_`` only where a child that left its map ran
            counts, busy = parts.get(left, ({}, {}))
            cell[f"{prefix}counts"] = counts
            cell[f"{prefix}busy"] = {state: round(seconds, 6) for state, seconds in busy.items()}
    return cell


def _end(span: Span, now: float) -> float:
    assert span.start is not None
    return max(span.start, now if span.end is None else span.end)


def _lane_order(lane: str) -> tuple[Any, ...]:
    # "labloom-task_10" after "labloom-task_9": numbers inside names compare as numbers.
    parts: list[Any] = []
    number = ""
    for char in lane:
        if char.isdigit():
            number += char
            continue
        if number:
            parts.append((0, int(number), ""))
            number = ""
        parts.append((1, 0, char))
    if number:
        parts.append((0, int(number), ""))
    return (lane == UNKNOWN_LANE, *parts)
