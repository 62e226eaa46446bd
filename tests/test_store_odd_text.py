"""Text the store cannot hold as it is (a lone surrogate, as a file name that is not UTF-8
gives; NUL, which PostgreSQL refuses) where it reaches the store other than through the
writer: a task's tags (the concurrency limits look them up) and the names a user filters by.
The writer escapes such text (``storable.py``, tests/test_chaos.py); these statements must
match what it wrote, never fail the flow or the command."""

from __future__ import annotations

from pathlib import Path

import labloom
from labloom import ThreadExecutor, flow, task
from labloom.store import open_store
from store_helpers import cli, cli_json

# What os.listdir gives for a file named caf\xe9.csv on a UTF-8 system.
NAME = b"caf\xe9.csv".decode("utf-8", "surrogateescape")
ESCAPED = "caf\\udce9.csv"


@task(tags=[NAME, "a\x00b"])
def read(i: int) -> int:
    return i


@flow(name="report " + NAME, executor=ThreadExecutor(max_workers=2))
def report(n: int) -> list[int]:
    return read.map(range(n)).result()


@flow(name="plain " + NAME)
def plain() -> int:
    return 1


def test_a_tag_the_store_cannot_hold_costs_the_flow_nothing(labloom_home: Path) -> None:
    # Before, the limits' lookup sent the tag as it was: the flow body raised
    # UnicodeEncodeError (or PostgreSQL's "cannot contain NUL"), with or without a limit set.
    assert report(3) == [0, 1, 2]
    labloom.limits.set(NAME, 1)  # the same tag, so it limits these task runs
    labloom.limits.set("a\x00b", 2)
    assert report(3) == [0, 1, 2]
    assert labloom.limits.list() == {ESCAPED: 1, "a\\x00b": 2}


def test_filtering_by_a_name_the_store_cannot_hold_finds_it(labloom_home: Path) -> None:
    plain()
    # `labloom runs --flow "plain $f"` in a script looping over files: argv holds the byte,
    # Python a surrogate. Before: a UnicodeEncodeError traceback.
    [run] = cli_json(labloom_home, "runs", "--flow", "plain " + NAME)
    assert run["flow_name"] == "plain " + ESCAPED
    assert cli_json(labloom_home, "runs", "--flow", "report " + NAME) == []
    shown = cli(labloom_home, "show", "id" + NAME)
    assert shown.returncode != 0 and "Traceback" not in shown.stderr, shown.stderr
    assert shown.stderr.count("\n") == 1, shown.stderr


def test_a_run_id_prefix_names_the_same_runs_on_both_stores(labloom_home: Path) -> None:
    # Before: a LIKE pattern, case-insensitive on SQLite only, and '%' or '_' (stripped) an
    # empty prefix: `labloom show %` named every run.
    run = plain.run()
    other = plain.run()
    store = open_store()
    assert store.get_run(run.id[:6].upper()).id == run.id
    assert {r.id for r in store.matching_runs("")} == set()
    for pattern in ("%", "_", run.id[:3] + "%", "_" + run.id[1:]):
        assert store.matching_runs(pattern) == [], pattern
    assert [r.id for r in store.matching_runs(other.id[:8])] == [other.id]
    shown = cli(labloom_home, "show", "%")
    assert shown.returncode != 0 and run.id not in shown.stdout
