"""The same question asked of experiments from each surface gets the same answer (issue 19):
Python's ``labloom.experiments``, the real `labloom experiments` command and the REST API
behind Jupyter's auth read ``since`` alike, name a malformed run id alike, and say when a flow
has no runs at all."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import labloom
from experiment_server import get, jp_server_config, refused, rows_as_lists  # noqa: F401  (fixtures: see there)
from labloom import flow, log_params, task
from store_helpers import cli

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@task
def tried(value: str) -> None:
    log_params(value=value)


@flow
def tries(values: list[str]) -> Any:
    return tried.map(values)


async def _runs_since(jp_fetch: Any, since: str) -> set[str]:
    page = await get(jp_fetch, "experiments", flow="tries", since=since)
    return {row["run_id"] for row in page["rows"]}


def _two_runs() -> tuple[Any, float, Any]:
    """Two runs of ``tries`` and a moment between them (the first has ended)."""
    first = tries.run(values=["old"], executor="local")
    middle = time.time()
    return first, middle, tries.run(values=["new"], executor="local")


async def test_rest_reads_since_as_the_cli_and_python_do(jp_fetch: Any, labloom_home: Path
                                                          ) -> None:
    # GET experiments?since= took epoch seconds only: since=7d or since=2026-12-01, as the
    # CLI's --since and labloom.experiments(since=...) take them, was a 400.
    first, middle, second = _two_runs()
    between = datetime.fromtimestamp(middle).isoformat()  # local, to the microsecond
    both, newer = {first.id, second.id}, {second.id}
    for since, ids in ((between, newer), ("1h", both), ("7d", both), (str(middle), newer),
                       ("2099-01-01", set())):
        assert await _runs_since(jp_fetch, since) == ids, since
        done = cli(labloom_home, "experiments", "--flow", "tries", "--since", since, "--json")
        assert done.returncode == 0, done.stderr
        assert {r["run_id"] for r in json.loads(done.stdout)["rows"]} == ids, since
        # Python reads the same text (since="7d" was a ValueError "not an ISO date").
        assert {r["run_id"] for r in labloom.experiments(flow="tries", since=since)} == ids, since
    # And the same moments from its own types (a datetime, a timedelta, a number).
    assert {r["run_id"] for r in labloom.experiments(flow="tries", since=middle)} == newer
    assert {r["run_id"] for r in labloom.experiments(
        flow="tries", since=datetime.fromtimestamp(middle))} == newer
    assert {r["run_id"] for r in labloom.experiments(flow="tries", since=timedelta(hours=1))
            } == both
    for bad in ("yesterday", "nan", "-1h"):
        with pytest.raises(ValueError, match=rf"since={bad!r} is .*'2026-12-01'.*'7d'.*"
                                             r"a datetime or a timedelta"):
            labloom.experiments(flow="tries", since=bad)
        code, message = await refused(jp_fetch, "experiments", since=bad)
        assert code == 400 and f"since: {bad!r} is" in message, message
        assert "'2026-12-01'" in message and "'7d'" in message and "epoch" in message, message
        done = cli(labloom_home, "experiments", f"--since={bad}")  # (-1h: not an option)
        assert done.returncode == 2 and "'7d'" in done.stderr, done.stderr


async def test_rest_runs_list_reads_since_and_until_as_experiments_does(jp_fetch: Any) -> None:
    # GET runs?since= took epoch seconds only: since=7d or a date, which GET experiments?since=
    # and the CLI take, was a 400 "must be a number".
    first, middle, second = _two_runs()
    between = datetime.fromtimestamp(middle).isoformat()

    async def listed(**params: str) -> set[str]:
        return {run["id"] for run in (await get(jp_fetch, "runs", flow="tries", **params))["runs"]}

    both, newer = {first.id, second.id}, {second.id}
    for since, ids in ((between, newer), ("1h", both), ("7d", both), (str(middle), newer),
                       ("2099-01-01", set())):
        assert await listed(since=since) == ids, since
    assert await listed(until=between) == {first.id}
    assert await listed(until="1h") == set()  # created within the hour: none before it
    for name, bad in (("since", "yesterday"), ("since", "nan"), ("until", "-1h")):
        code, message = await refused(jp_fetch, "runs", **{name: bad})
        assert code == 400 and f"{name}: {bad!r} is" in message, message
        assert "'2026-12-01'" in message and "'7d'" in message and "epoch" in message, message


async def test_rest_runs_names_a_malformed_id_and_the_rule(jp_fetch: Any) -> None:
    # runs=nope answered a bare 404 "no such run", as if the run had been deleted: a typo in a
    # script's query read as a missing run.
    run = tries.run(values=["a"], executor="local")
    for bad in ("nope", "' OR 1=1 --", "abc"):
        code, message = await refused(jp_fetch, "experiments", runs=f"{run.id},{bad}")
        assert code == 400, (bad, code, message)
        assert f"{bad!r} is not a run id" in message and "12 hex digits" in message, message
    # A well-formed id of no run is left out, as documented (the compare tab may name a run
    # deleted meanwhile); the runs named that exist still answer.
    response = await jp_fetch("labloom", "api", "experiments",
                              params={"runs": f"{run.id}, abcdef012345"})
    assert json.loads(response.body)["runs"] == [run.id]


def test_python_says_a_flow_has_no_runs_as_the_cli_does(labloom_home: Path) -> None:
    # labloom.experiments(flow="triess") was an empty frame, silently, as if the flow had
    # logged nothing; `labloom experiments --flow triess` said "no runs recorded".
    tries.run(values=["a"], executor="local")
    with pytest.warns(UserWarning, match=r"no runs of flow 'triess' recorded in the store "
                      r".*; its flows: 'tries' \(`labloom runs` lists the runs\)") as said:
        assert labloom.experiments(flow="triess") == []  # still the empty answer it was
    assert [Path(w.filename).name for w in said] == [Path(__file__).name]  # at the call
    done = cli(labloom_home, "experiments", "--flow", "triess")
    assert done.returncode == 0 and "no runs recorded for flow 'triess'" in done.stdout
    # A flow that ran, none of its runs since: an answer, not a typo (filterwarnings=error
    # makes any warning here a failure).
    assert labloom.experiments(flow="tries", since="2099-01-01") == []
    assert len(labloom.experiments(flow="tries")) == 1
