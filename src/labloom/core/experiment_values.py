"""What a task marks for comparison: its params and metrics (``log_params``, ``log_metrics``,
``log_metric``, and ``@task(params=True, metrics=[...])``).

Nothing is recorded unless the code asks: task data stays where it is, the store keeps only
what is marked. A value is a number, a bool or a short string (params may also be None); NaN
and inf are kept as such; anything else is refused with the type named, before anything of that
call is sent, so what was already recorded stays. Values travel like log lines: from where the
task runs, through its run's sink (``sink_registry.RunSink.task_values``; in the run's own
process, straight to its calls waiting: ``waiting_calls.py``), to the engine, which emits them
a batch of calls at a time (one ``ExperimentCalls`` event at most every ``sinks.SEND_EVERY``
seconds while calls keep coming: ``sinks.ExecutorSink._send``).

>>> @task
... def train(max_depth: int) -> float:
...     log_params(max_depth=max_depth)
...     for epoch in range(3):
...         log_metric("loss", 1 / (epoch + 1), step=epoch)
...     log_metrics(auc=0.93)
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from .errors import ExperimentValueError
from .logs import current_task
from .secrets import Secret
from .sink_registry import sink_for

MAX_NAME = 100
MAX_TEXT = 200  # characters of a string value; longer ones are cut, with a warning



def check_name(name: Any, kind: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ExperimentValueError(
            f"[labloom] a {kind} name must be a non-empty string, got {name!r}"
        )
    if len(name) > MAX_NAME:
        raise ExperimentValueError(
            f"[labloom] {kind} name {name[:40]!r}... is {len(name)} characters; names are at "
            f"most {MAX_NAME}"
        )
    return name


def check_value(kind: str, name: str, value: Any) -> tuple[Any, str | None]:
    """The value as stored (bool, int, float or str; None for a param), and a note when a
    string was cut. Anything else raises ``ExperimentValueError`` naming its type."""
    if isinstance(value, Secret) or type(value).__name__ in ("SecretStr", "SecretBytes"):
        raise ExperimentValueError(
            f"[labloom] {kind} {name!r} is a secret, and labloom never records secrets; log "
            "something that identifies it without revealing it (a key name), or nothing"
        )
    if isinstance(value, bool):
        return value, None
    if getattr(value, "dtype", None) is not None and getattr(value, "shape", None) == ():
        value = value.item()  # a NumPy scalar (numpy.float32, numpy.bool_, ...)
        if isinstance(value, bool):
            return value, None
    if isinstance(value, numbers.Integral):
        return int(value), None
    if isinstance(value, numbers.Real):
        return float(value), None  # NaN and inf included: kept and shown as such
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return value[:MAX_TEXT], (
                f"{kind} {name!r} was cut to {MAX_TEXT} of its {len(value)} characters"
            )
        return value, None
    if value is None and kind == "param":
        return None, None  # "not set" (say max_depth=None) is a real setting
    kind_name = type(value).__module__ + "." + type(value).__qualname__
    kind_name = kind_name.removeprefix("builtins.")
    raise ExperimentValueError(
        f"[labloom] {kind} {name!r} is a {kind_name}; {kind}s are numbers, bools and short "
        f"strings{' (or None)' if kind == 'param' else ''}. Log a number taken from it "
        "(len(x), float(x)) or a short string (str(x)); task data itself stays in results"
    )


def _check_step(step: Any) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ExperimentValueError(
            f"[labloom] step must be a whole number >= 0 (an epoch, an iteration) or None, "
            f"got {step!r}"
        )
    return int(step)


def record(kind: str, values: dict[str, Any], step: int | None = None) -> None:
    """Check every value of ``values`` (a dict of the caller's own, converted in place), then
    send them to the current task run's sink. A bad value raises before anything is sent:
    nothing of this call is recorded, and what was recorded before stays.

    Outside a task run (a task called as a plain function, a flow body) the checked values go
    nowhere, so tasks stay plain, testable functions.
    """
    # The common call (names seen before, plain numbers) checked by two calls in C, without a
    # Python loop over its items: a metric per map child is a hot path.
    if _seen_names.issuperset(values) and _PLAIN.issuperset(map(type, values.values())):
        notes = None
    else:
        notes = _checked(kind, values)
    ctx = current_task()
    if ctx is None or not values:
        return
    if ctx.kept is not None:
        ctx.kept.append((kind, values, step))
    when = time.time()
    for note in notes or ():
        ctx.sink(ctx.task_run_id, logging.WARNING, when, f"[labloom] {note}")
    add_call = ctx.add_call  # the run's engine is in this process: straight to its calls
    if add_call is not None:
        add_call((ctx.task_run_id, kind, values, step, when, ctx.attempt, ctx.rerun))
        waiting = ctx.waiting  # read after the append: a send since clears ``asked``
        if waiting is not None and (not waiting.asked or len(waiting.calls) >= waiting.limit):
            waiting.wake()
        return
    sink = sink_for(ctx.run_id)
    if sink is not None:
        sink.task_values(ctx.run_id, ctx.task_run_id, when, kind, values, step, ctx.attempt,
                         ctx.rerun)


def replay(calls: list[tuple[str, dict[str, Any], int | None]]) -> None:
    """Log again, for the current task run, the calls a stored result was computed with
    (``TaskContext.kept``): a task run answered from the cache, or reusing a result for
    ``labloom retry``, shows the params and metrics of the run that computed it."""
    for kind, values, step in calls:
        record(kind, dict(values), step)


# Types ``check_value`` keeps as they are.
_PLAIN = frozenset((float, int, bool))
# Names that passed ``check_name`` (str, not blank, at most MAX_NAME), so that ``record`` need
# not check them again; at most MAX_SEEN, for code that makes a name per call (f"loss_{i}").
_seen_names: set[str] = set()
MAX_SEEN = 1000


def _checked(kind: str, values: dict[str, Any]) -> list[str] | None:
    """``record``'s check of each item, in order (the first bad one raises); the notes of
    strings cut, if any."""
    notes: list[str] | None = None  # made only for a cut string: most calls have none
    for name, value in values.items():
        if type(name) is not str or not name or len(name) > MAX_NAME or name.isspace():
            check_name(name, kind)  # raises
        elif len(_seen_names) < MAX_SEEN:
            _seen_names.add(name)
        kind_of = type(value)
        if kind_of is float or kind_of is int or kind_of is bool:
            continue
        stored, note = check_value(kind, name, value)
        if stored is not value:
            values[name] = stored  # the same keys: safe while iterating
        if note:
            if notes is None:
                notes = []
            notes.append(note)
    return notes


def _own(kind: str, values: Mapping[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """A dict of our own: keywords are one already; a dict given is copied (the caller may
    change it after logging)."""
    if values is None:
        return more
    if not isinstance(values, Mapping):
        raise ExperimentValueError(
            f"[labloom] log_{kind}s takes a dict or keywords, got a {type(values).__name__}"
        )
    return {**values, **more}


def log_params(values: Mapping[str, Any] | None = None, /, **params: Any) -> None:
    """Record settings of the current task run, to compare runs by: numbers, bools, short
    strings or None.

    >>> log_params(max_depth=5, criterion="gini")
    >>> log_params({"learning rate": 0.1})
    """
    record("param", _own("param", values, params))


def log_metrics(
    values: Mapping[str, Any] | None = None, /, *, step: int | None = None, **metrics: Any
) -> None:
    """Record results of the current task run: numbers, bools or short strings (NaN and inf
    are kept). With ``step``, points of a curve (the last one is the run's value).

    >>> log_metrics(auc=0.93, accuracy=0.88)
    """
    if values is None and step is None:
        # The common call (keywords only: a dict of our own already; names seen before, plain
        # numbers; a task run of this process keeping nothing) checked and handed on in this
        # one frame, as ``record`` would: a metric per map child is issue 19's hot path, and
        # ``record``'s frame was 0.7k instructions of its 7.4k. Its values checked by a loop
        # of ``is``: ``_PLAIN.issuperset(map(type, ...))`` made a map object and its tuple of
        # iterators each call (0.5k more). Anything else goes on to ``record``.
        ctx = current_task()
        if (ctx is not None and (add_call := ctx.add_call) is not None and ctx.kept is None
                and metrics and _seen_names.issuperset(metrics)):
            for value in metrics.values():
                kind_of = type(value)
                if kind_of is not float and kind_of is not int and kind_of is not bool:
                    break
            else:
                add_call((ctx.task_run_id, "metric", metrics, None, time.time(), ctx.attempt,
                          ctx.rerun))
                waiting = ctx.waiting  # read after the append: a send since clears ``asked``
                if waiting is not None and (not waiting.asked
                                            or len(waiting.calls) >= waiting.limit):
                    waiting.wake()
                return
        record("metric", metrics)
        return
    record("metric", metrics if values is None else _own("metric", values, metrics),
           None if step is None else _check_step(step))


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record one metric; with ``step`` (an epoch), one point of its curve.

    >>> for epoch in range(10):
    ...     log_metric("loss", loss, step=epoch)
    """
    record("metric", {check_name(name, "metric"): value},
           None if step is None else _check_step(step))


# --- @task(params=True, metrics=[...]) -----------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """What a task call records by itself (``@task(params=..., metrics=...)``); small and
    picklable, it travels in the ``TaskCall``.

    ``params``: (argument position or keyword, argument name) of each argument to record;
    a dict argument records its items. ``metrics``: names taken from a returned dict.
    """

    params: tuple[tuple[int | str, str], ...] = ()
    metrics: tuple[str, ...] = ()

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not self.params:
            return
        values: dict[str, Any] = {}
        for where, arg_name in self.params:
            if isinstance(where, int):
                if where >= len(args):
                    continue
                value = args[where]
            elif where in kwargs:
                value = kwargs[where]
            else:
                continue
            items = _items_of(value)
            if items is not None:
                _flatten("", items, values)
            else:
                values[arg_name] = value
        try:
            record("param", values)
        except ExperimentValueError as exc:
            raise ExperimentValueError(
                f"{exc}\n[labloom] params=True records each mapped argument: map over dicts, "
                "dataclasses, named tuples, pydantic models or attrs classes (their fields are "
                "recorded), or call log_params(...) in the task and leave params=True off"
            ) from None

    def after(self, task_name: str, value: Any) -> None:
        if not self.metrics:
            return
        if not isinstance(value, Mapping):
            raise ExperimentValueError(
                f"[labloom] task {task_name!r} has metrics={list(self.metrics)!r} but returned "
                f"a {type(value).__name__}; return a dict holding them, such as "
                f"{{{self.metrics[0]!r}: 0.93, ...}}, or call log_metrics() in the task"
            )
        missing = [name for name in self.metrics if name not in value]
        if missing:
            raise ExperimentValueError(
                f"[labloom] task {task_name!r} has metrics={list(self.metrics)!r} but its "
                f"returned dict has no {', '.join(map(repr, missing))}; its keys are "
                f"{sorted(map(str, value))[:10]!r}"
            )
        record("metric", {name: value[name] for name in self.metrics})


def _flatten(prefix: str, items: Mapping[Any, Any], into: dict[str, Any], depth: int = 0,
             ) -> None:
    """A nested config's items under dotted names ({"model": {"depth": 3}}: model.depth), as
    a Hydra or JSON config is written; each value is checked when recorded."""
    for key, value in items.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        nested = _items_of(value) if depth < 10 else None
        if nested is not None:
            _flatten(name, nested, into, depth + 1)
        else:
            into[name] = value


def _items_of(value: Any) -> Mapping[str, Any] | None:
    """The named items of a map element: a dict's, a dataclass's, a named tuple's, a pydantic
    model's or an attrs class's fields (typed configs, as common as dicts)."""
    if isinstance(value, Mapping):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()  # type: ignore[no-any-return]
    kind = type(value)
    if hasattr(kind, "model_fields") and hasattr(kind, "model_dump"):  # pydantic 2
        # Its fields only, read as they are (model_dump would turn a nested model into a
        # dict, a SecretStr into text: the secret check must see the SecretStr).
        return {name: getattr(value, name) for name in kind.model_fields}
    attributes = getattr(kind, "__attrs_attrs__", None)  # attrs, without importing it
    if attributes is not None:
        return {attribute.name: getattr(value, attribute.name) for attribute in attributes}
    return None


def check_options(where: str, params: Any, metrics: Any) -> tuple[bool, tuple[str, ...]]:
    """``@task`` options ``params`` and ``metrics``, checked at decoration time."""
    if not isinstance(params, bool):
        raise TypeError(
            f"{where}: params must be True (record the mapped element(s) as params) or False, "
            f"got {params!r}"
        )
    if metrics is None:
        metrics = ()
    if isinstance(metrics, str):
        raise TypeError(
            f"{where}: metrics must be a list of names such as [{metrics!r}], got the string "
            f"{metrics!r}"
        )
    try:
        names = tuple(metrics)
    except TypeError:
        raise TypeError(
            f"{where}: metrics must be a list of names taken from the returned dict, such as "
            f"['auc'], got {metrics!r}"
        ) from None
    for name in names:
        try:
            check_name(name, "metric")
        except ExperimentValueError as exc:
            raise TypeError(f"{where}: {str(exc).removeprefix('[labloom] ')}") from None
    return params, names


def recording_for(tr: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Recording | None:
    """The ``Recording`` of one call of task run ``tr``: for a map child, its mapped arguments
    (not the unmapped ones); for a plain call, every argument."""
    task = tr.task
    if not task.params and not task.metrics:
        return None
    params: list[tuple[int | str, str]] = []
    if task.params:
        names = _positional_names(task.fn, len(args))
        node = tr.parent
        if node is not None:
            params += [(i, names[i]) for i, source in enumerate(node.sources)
                       if source.kind != "unmapped"]
            params += [(key, key) for key, source in node.keywords.items()
                       if source.kind != "unmapped"]
        else:
            params += [(i, names[i]) for i in range(len(args))]
            params += [(key, key) for key in kwargs]
    return Recording(tuple(params), task.metrics)


def _positional_names(fn: Any, count: int) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in parameters if p.kind == p.VAR_POSITIONAL), "arg")
    return [names[i] if i < len(names) else f"{star}{i}" for i in range(count)]


__all__ = ["Recording", "check_options", "log_metric", "log_metrics", "log_params",
           "recording_for"]
