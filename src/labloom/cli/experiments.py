"""`labloom experiments`: the params and metrics task runs logged, side by side, as a table,
``--csv`` or ``--json`` (the REST API's shape)."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import sys
from typing import Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..core.errors import LabloomError
from ..core.terminal_text import encodable, printable
from ..store import open_store
from ..store.experiments import (
    RECENT_RUNS,
    check_filter,
    check_sort,
    rows_of,
    runs_to_read,
)
from ..store.since_text import since_of
from .history import _find, _seconds, _short, _table
from .options import count
from .terminal import echo, shown_time


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    cmd = subparsers.add_parser(
        "experiments",
        help="params and metrics of a run's task runs (or of a flow's recent runs), compared",
    )
    cmd.add_argument("run_id", metavar="RUN", nargs="?",
                     help="a run id (or a unique prefix); without it, the newest runs")
    cmd.add_argument("--flow", help="without RUN: only runs of this flow")
    cmd.add_argument("--runs", type=count("--runs"), default=RECENT_RUNS, metavar="N",
                     help=f"without RUN: the newest N runs (default {RECENT_RUNS})")
    cmd.add_argument("--since", metavar="WHEN", type=_since,
                     help="without RUN: only runs created since WHEN, a date or time "
                          "('2026-12-01', '2026-12-01T08:00', local unless it says its zone), "
                          "that long ago ('12h', '7d') or seconds since the epoch, as "
                          "labloom.experiments(since=...) and GET experiments?since= read it")
    cmd.add_argument("--sort", metavar="COLUMN",
                     help="sort by a metric or param (or params.x, metrics.x, duration, ...)")
    cmd.add_argument("--desc", action="store_true", help="sort descending (best AUC first)")
    cmd.add_argument("--top", type=count("--top", low=0), metavar="N",
                     help="only the first N rows")
    cmd.add_argument("--filter", metavar="QUERY",
                     help="only rows matching every term, as in the Experiments view: "
                          "'auc>0.9 criterion=gini', '\"learning rate\"<0.01', or words")
    out = cmd.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true",
                     help="print CSV (one column per name; text a spreadsheet would run as a "
                          "formula, starting with = + - or @, gets a leading ')")
    out.add_argument("--json", action="store_true",
                     help="print JSON (the REST API's shape: every value as logged, NaN and inf "
                          'as the strings "NaN", "Infinity", "-Infinity")')
    cmd.set_defaults(handler=_experiments)


def _experiments(args: argparse.Namespace) -> int:
    from . import CLIError

    with open_store() as store:
        if args.run_id:
            if args.since is not None:
                raise CLIError("--since picks runs: give it without RUN (a run is read whole)")
            records = [_find(store, args.run_id)]
        else:
            records = runs_to_read(store, args.flow, args.since, limit_runs=args.runs)
            if not records and (args.flow or args.since is not None):
                which = (f" for flow {args.flow!r}" if args.flow else "") + (
                    f" since {shown_time(args.since)}" if args.since is not None else "")
                note = (f"no runs recorded{which}; `labloom runs` lists the recorded runs "
                        "with their flows and start times")
                if not (args.json or args.csv):
                    echo(note)
                    return 0
                # A script reading the output gets it empty, in its format (`labloom runs
                # --json` gives []), the note beside it.
                print(f"labloom: {printable(note)}", file=sys.stderr)
        rows = rows_of(store, records)
    names = ex.columns(rows)
    logged = len(rows)
    try:
        check_sort(records, rows, args.sort)
        check_filter(records, names, args.filter, across=not args.run_id)
        rows = ef.kept(rows, args.filter, names, () if args.run_id else ("run_id",))
    except LabloomError as exc:  # an unknown column, a filter too long
        raise CLIError(str(exc).removeprefix("[labloom] ")) from None
    total = len(rows)
    # Unsorted, as the views show them: each run's rows by map index. In the order logged (the
    # REST API's unsorted order) a Dask sweep read train[7], train[2], train[11]..., and --top
    # took the first to finish.
    shown = ex.page(rows, args.sort or ex.INDEX_ORDER, args.desc, args.top)
    if args.json:
        print(json.dumps(ex.jsonable({
            "columns": names, "total": total, "rows": [row.as_dict() for row in shown],
        }), indent=1))
        return 0
    if args.csv:
        records = [ex.record(row, names) for row in shown]
        writer = csv.writer(sys.stdout)
        header = list(ex.record(ex.Experiment("", ""), names))
        writer.writerow([_inert(name) for name in header])
        writer.writerows([[_cell(record[key], csv=True) for key in header] for record in records])
        return 0
    if logged and not rows:
        echo(f"none of the {logged} rows match the filter {args.filter!r}")
        return 0
    if not rows:
        echo("no params or metrics recorded: tasks record them with labloom.log_params(...), "
             "labloom.log_metrics(...) or @task(params=True, metrics=[...])")
        return 0
    # The table (not --csv, whose blank is a null to a reader; --json keeps null) shows a param
    # logged as None as the view does: "None", where blank is a param not logged.
    records = [ex.record(_none_shown(row), names) for row in shown]
    keys = [key for key in (records[0] if records else {}) if key not in ex.FIXED]
    across = not args.run_id
    header = (["RUN"] if across else []) + ["TASK RUN", "STATE", "DURATION", *keys]
    table = [
        ([row.run_id] if across else [])
        + [_name(row), row.state, _seconds(row.duration), *(_cell(rec[k]) for k in keys)]
        for row, rec in zip(shown, records, strict=True)
    ]
    _table(header, table)
    if len(shown) < total:
        echo(f"({len(shown)} of {total} rows; --top N shows more)")
    if any(_long(rec[k]) for rec in records for k in keys):
        echo(f"(text over {CELL_TEXT} characters cut; --csv or --json give it whole)")
    return 0


# A terminal table's text cell at most (a param of 200 characters, a file path or a model's
# repr, made every row wider than the screen: the table unreadable, the metrics out of sight).
CELL_TEXT = 40


def _long(value: Any) -> bool:
    return isinstance(value, str) and len(value) > CELL_TEXT


def _none_shown(row: ex.Experiment) -> ex.Experiment:
    if None not in row.params.values():
        return row
    params = {k: ef.SHOWN_NONE if v is None else v for k, v in row.params.items()}
    return dataclasses.replace(row, params=params)


def _since(text: str) -> float:
    """``--since``: read as ``GET experiments?since=`` reads it (``since_text``)."""
    try:
        return since_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(row: ex.Experiment) -> str:
    return row.task if row.map_index is None else f"{row.task}[{row.map_index}]"


def _cell(value: Any, csv: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if csv:  # JSON's names, which spreadsheets and pandas read back
            text = ex.jsonable(value)
            return text if isinstance(text, str) else repr(value)
        return ef.text(value) if value != value or value in _INFINITE else f"{value:.6g}"
    if csv and isinstance(value, str):
        return _inert(value)
    return _short(value, CELL_TEXT) if _long(value) else str(value)


# The table names them as the views do ("inf", "NaN"), not as JSON must ("Infinity").
_INFINITE = (float("inf"), float("-inf"))


# Text a spreadsheet reads as a formula (CSV injection, OWASP): its first character is one of
# these and it is not a plain number ("-3" stays, Excel reads it as the number it is).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _inert(text: str) -> str:
    """``text`` for a CSV cell: a leading ' when a spreadsheet would run it (a param such as
    ``=HYPERLINK(...)`` from a data set's column), which Excel and LibreOffice show as the
    text itself; a lone surrogate escaped, as UTF-8 cannot hold it. ``--json`` keeps every
    value as logged."""
    text = encodable(text)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
