"""``@task(params=True)`` records the map element: a dict's items, a dataclass's or a named
tuple's fields (a typed config is as common as a dict), else the argument itself under its
name. Review of session 42: a sweep over dataclass configs failed every child before it ran,
with an error telling the user to "log a number taken from it", though the task logged
nothing itself (``params=True`` did)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import attrs
import pydantic
import pytest

from labloom import flow, task


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # the rows as a list of dicts


@dataclass
class Config:
    depth: int
    criterion: str = "gini"


class Point(NamedTuple):
    depth: int
    lr: float


@task(params=True, metrics=["auc"])
def fit(config: Any) -> dict[str, float]:
    return {"auc": config.depth / 10}


@flow
def typed_sweep() -> None:
    fit.map([Config(3), Config(5, "entropy")])
    fit.map([Point(3, 0.1)])


def test_a_dataclass_or_named_tuple_element_gives_its_fields_as_params(executor: str) -> None:
    run = typed_sweep.run(executor=executor)
    assert run.state.value == "Completed", run.message
    rows = sorted(((r["depth"], r["criterion"], r["lr"], r["auc"]) for r in run.experiments()),
                  key=repr)
    assert rows == sorted([(3, "gini", None, 0.3), (5, "entropy", None, 0.5),
                           (3, None, 0.1, 0.3)], key=repr)


@task(params=True)
def pair(config: tuple[int, float]) -> int:
    return config[0]


@flow
def tuple_sweep() -> None:
    pair.map([(3, 0.1)])


def test_an_element_params_true_cannot_record_says_so_and_how_to_fix_it() -> None:
    run = tuple_sweep.run(executor="threads")
    (child,) = run.tasks
    message = str(child.error)
    assert "params=True" in message and "'config' is a tuple" in message, message
    assert "dict" in message and "log_params" in message, message


@task(params=True)
def nested(config: dict[str, Any]) -> int:
    return 1


@flow
def nested_sweep() -> None:
    nested.map([{"model": {"depth": 3, "kind": Config(4)}, "optim": {"lr": 0.1}, "seed": 0}])


def test_a_nested_config_gives_its_leaves_under_dotted_names() -> None:
    # A Hydra-style config (dicts in a dict) failed every child: "param 'model' is a dict".
    run = nested_sweep.run(executor="threads")
    assert run.state.value == "Completed", run.message
    (row,) = run.experiments()
    assert {k: row[k] for k in ("model.depth", "model.kind.depth", "model.kind.criterion",
                                "optim.lr", "seed")} == {
        "model.depth": 3, "model.kind.depth": 4, "model.kind.criterion": "gini",
        "optim.lr": 0.1, "seed": 0}


class PydanticConfig(pydantic.BaseModel):
    depth: int
    optim: dict[str, float] = {"lr": 0.1}


class Guarded(pydantic.BaseModel):
    depth: int
    api_key: pydantic.SecretStr


@attrs.define
class AttrsConfig:
    depth: int
    criterion: str = "gini"


@task(params=True, metrics=["auc"])
def fit_any(config: Any) -> dict[str, float]:
    depth = config["depth"] if isinstance(config, dict) else config.depth
    return {"auc": depth / 10}


@flow
def every_element_sweep() -> None:
    fit_any.map([{"depth": 1}, Config(2), Point(3, 0.3), PydanticConfig(depth=4),
             AttrsConfig(5)])


def test_every_kind_of_config_gives_its_fields_on_every_executor(any_executor: Any) -> None:
    # A pydantic model or an attrs class (typed configs as common as dataclasses) failed every
    # child: "param 'config' is a PydanticConfig".
    run = every_element_sweep.run(executor=any_executor)
    assert run.state.value == "Completed", [str(t.error) for t in run.tasks if t.error]
    rows = {r["depth"]: r for r in run.experiments()}
    assert sorted(rows) == [1, 2, 3, 4, 5] and all(r["auc"] == d / 10 for d, r in rows.items())
    assert (rows[2]["criterion"], rows[3]["lr"], rows[4]["optim.lr"], rows[5]["criterion"]) == (
        "gini", 0.3, 0.1, "gini")


@flow
def guarded_sweep() -> None:
    fit.map([Guarded(depth=1, api_key="s3cr3t")])


def test_a_secret_field_of_a_config_is_refused() -> None:
    run = guarded_sweep.run(executor="threads")
    (child,) = run.tasks
    assert "'api_key' is a secret" in str(child.error) and "s3cr3t" not in str(child.error)
    assert run.experiments() == []
