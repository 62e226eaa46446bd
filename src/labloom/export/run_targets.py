"""What ``labloom run`` and ``labloom schedule add`` point at: ``file.py[:flow]`` or
``notebook.ipynb[:flow]``, and ``--param k=v`` values checked against the flow's signature.

    >>> target = parse_target("etl.py:nightly")
    >>> flow = load_flow(target)
    >>> params = check_params(flow, parse_params(["day=\\"2024-01-01\\"", "n=3"]))
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import LabloomError, TargetError
from ..core.flows import Flow
from ..core.loading import import_file


@dataclass(frozen=True)
class Target:
    path: Path
    flow: str | None = None

    @property
    def is_notebook(self) -> bool:
        return self.path.suffix == ".ipynb"

    def __str__(self) -> str:
        return f"{self.path}:{self.flow}" if self.flow else str(self.path)


def parse_target(text: str, base: Path | None = None) -> Target:
    """``file.py``, ``file.py:flow``, ``notebook.ipynb`` or ``notebook.ipynb:flow``; a relative
    path is taken from ``base`` (default: the current folder) and made absolute."""
    path_text, flow = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head.endswith((".py", ".ipynb")):
        path_text, flow = head, tail or None
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if path.suffix not in (".py", ".ipynb"):
        raise TargetError(
            f"target {text!r} is neither a Python file nor a notebook; "
            "write file.py:flow or notebook.ipynb[:flow]"
        )
    if not path.is_file():
        raise TargetError(f"target {text!r}: no such file {path}")
    return Target(path.resolve(), flow)


def load_flow(target: Target) -> Flow[..., Any]:
    """Import the target and return its flow (the only one in the file, or the named one)."""
    if target.is_notebook:
        from .exporter import load_notebook_flow

        try:
            return load_notebook_flow(target.path, target.flow)
        except LabloomError as exc:
            raise TargetError(str(exc)) from None
    module = _import_file(target.path)
    flows = _flows_in(module)
    if target.flow is not None:
        found = getattr(module, target.flow, None)
        if isinstance(found, Flow):
            return found
        by_name = [f for f in flows if f.name == target.flow]
        if by_name:
            return by_name[0]
        if callable(found):  # a function the user meant as the flow
            raise TargetError(f"{target.path.name}: {target.flow} is not a flow; decorate it "
                              "with @flow (from labloom import flow)")
        raise TargetError(
            f"{target.path.name} has no flow {target.flow!r}; its flows are "
            f"{_names(module, flows)}"
        )
    if not flows:  # said "holds 0 flows (none); name one: FILE:NAME"
        raise TargetError(f"{target.path.name} defines no flow; decorate the function to run "
                          "with @flow (from labloom import flow)")
    if len(flows) != 1:
        raise TargetError(
            f"{target.path.name} holds {len(flows)} flows ({_names(module, flows)}); "
            f"name one: {target.path.name}:NAME"
        )
    return flows[0]


def load_recorded(record: dict[str, Any], run_id: str) -> Flow[..., Any]:
    """The flow a recorded run was made from: its file, or for a ``%%flow`` cell the flow
    exported afresh from the notebook it ran in (the notebook as saved now)."""
    notebook = record.get("notebook")
    if not notebook:
        return _load_file(record, run_id)
    if not Path(notebook).is_file():
        raise TargetError(
            f"run {run_id}: its notebook {notebook} is gone; restore it, or run the flow afresh"
        )
    return load_flow(Target(Path(notebook), record.get("flow") or None))


def _load_file(record: dict[str, Any], run_id: str) -> Flow[..., Any]:
    """The ``Flow`` a run was made from, loaded afresh from its file."""
    path = record.get("file")
    name = record.get("flow") or record.get("function")
    if not path or record.get("note"):
        raise TargetError(
            f"run {run_id} of flow {name!r} cannot be retried from here: its code is not in a "
            f"file this process can load ({record.get('note') or 'no file recorded'}). Export "
            "the notebook (`labloom export NOTEBOOK`) and run the module, or call "
            "run.retry() in the kernel that ran it"
        )
    if not os.path.isfile(path):
        raise TargetError(
            f"run {run_id}: the flow's file {path} is gone; restore it, or run the flow afresh"
        )
    try:
        module = import_file(path, f"labloom_retry_{abs(hash(path))}")
    except Exception as exc:
        raise TargetError(
            f"run {run_id}: importing {path} raised {type(exc).__name__}: {exc}"
        ) from exc
    candidate = getattr(module, record.get("function") or "", None)
    if isinstance(candidate, Flow):
        return candidate
    for value in vars(module).values():
        if isinstance(value, Flow) and value.name == name:
            return value
    raise TargetError(
        f"run {run_id}: {path} no longer defines the flow {name!r} "
        f"(looked for a @flow named {record.get('function')!r})"
    )


def raw_params(items: Iterable[str]) -> dict[str, str]:
    """``k=v`` pairs as the text given."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise TargetError(f"--param takes NAME=VALUE, got {item!r}")
        raw[key] = value
    return raw


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value is JSON where it parses as JSON, else the string itself."""
    params: dict[str, Any] = {}
    for key, raw in raw_params(items).items():
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def check_params(
    flow: Flow[..., Any], params: dict[str, Any], raw: dict[str, str] | None = None
) -> dict[str, Any]:
    """Refuse unknown and missing parameters before anything runs, naming the flow's own;
    with ``raw`` (the text given), values are also checked against the annotations."""
    accepts_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in flow.signature.parameters.values()
    )
    known = [
        p.name
        for p in flow.signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    unknown = [] if accepts_any else sorted(set(params) - set(known))
    missing = [
        p.name
        for p in flow.signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and p.name not in params
    ]
    problems = []
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing parameter(s) {', '.join(missing)}")
    if problems:
        raise TargetError(
            f"flow {flow.name!r}: {'; '.join(problems)}; its parameters are "
            f"{flow.describe_parameters()} (pass them as --param NAME=VALUE)"
        )
    if raw is not None:
        from .params import convert_params

        params = convert_params(flow, params, raw)
    try:
        return flow.bind(**params)
    except TypeError as exc:
        raise TargetError(str(exc)) from None


def _import_file(path: Path) -> Any:
    name = f"labloom_target_{path.stem}_{abs(hash(str(path))):x}"
    try:
        return import_file(path, name)
    except SystemExit as exc:  # top-level sys.exit() or argparse: it ended labloom silently
        raise TargetError(
            f"importing {path.name} called sys.exit({exc.code!r}): a script's top-level code "
            "runs on import; put it under `if __name__ == \"__main__\":`"
        ) from None
    except Exception as exc:
        raise TargetError(
            f"importing {path.name} raised {type(exc).__name__}: {exc}; fix the file, then "
            f"check it with: python {path}"
        ) from exc


def _flows_in(module: Any) -> list[Flow[..., Any]]:
    seen: dict[int, Flow[..., Any]] = {}
    for value in vars(module).values():
        if isinstance(value, Flow):
            seen.setdefault(id(value), value)
    return list(seen.values())


def _names(module: Any, flows: list[Flow[..., Any]]) -> str:
    names = [attr for attr, value in vars(module).items() if isinstance(value, Flow)]
    return ", ".join(dict.fromkeys(names)) or "none"
