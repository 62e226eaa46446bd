"""A flow body run again by ``@flow(retries=N)`` reads what is there now: its task calls and
maps run with those inputs. A map's child i is the earlier attempt's child i (by position):
reused when it completed with the same inputs, run again with the new ones otherwise; a
longer list adds children, a shorter one leaves the earlier ones past its end as history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labloom import State, flow, task, unmapped


def listing_by_attempt(*lists: list[str]) -> Any:
    """What the body reads at each attempt (the export's files, growing as they arrive)."""
    left = list(lists)
    return lambda: left.pop(0) if len(left) > 1 else left[0]


def test_a_replayed_map_runs_its_failed_children_with_the_new_inputs(tmp_path: Path) -> None:
    listing = listing_by_attempt(["a", "b.partial", "c"], ["a", "b", "c", "d"])
    ran: list[str] = []

    @task
    def process(name: str) -> str:
        ran.append(name)
        if name.endswith(".partial"):
            raise ValueError(f"{name} is still being written")
        return name.upper()

    @task
    def summarize(parts: list[str]) -> str:
        return "".join(parts)

    attempts: list[int] = []

    @flow(retries=1)
    def nightly() -> str:
        attempts.append(1)
        parts = process.map(listing())
        if len(attempts) == 1:
            parts.result()  # raises: the body fails, and runs again
        return summarize(parts).result()

    run = nightly.run()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == "ABCD"  # not the first attempt's b.partial, and d too
    # a and c completed with the same inputs: reused; b ran with its new input; d is new.
    assert sorted(ran) == ["a", "b", "b.partial", "c", "d"]
    children = [tr.name for tr in run.tasks if tr.name.startswith("process")]
    assert children == ["process[0]", "process[1]", "process[2]", "process[3]"]


def test_a_completed_child_whose_input_changed_runs_again() -> None:
    listing = listing_by_attempt([1, 2, 3], [1, 20, 3])
    ran: list[int] = []
    attempts: list[int] = []

    @task
    def double(x: int) -> int:
        ran.append(x)
        return 2 * x

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        doubled = double.map(listing())
        if len(attempts) == 1:
            doubled.result()
            raise ConnectionError("the report share is not mounted yet")
        return doubled

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == [2, 40, 6], run.message
    assert sorted(ran) == [1, 2, 3, 20]  # 1 and 3 reused


def test_a_shorter_list_leaves_the_children_past_its_end_as_history() -> None:
    listing = listing_by_attempt([1, 2, -3], [1, 2])
    attempts: list[int] = []

    @task
    def check(x: int) -> int:
        if x < 0:
            raise ValueError("a negative count")
        return x

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        checked = check.map(listing())
        if len(attempts) == 1:
            checked.result()
        return checked

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == [1, 2], run.message
    states = {tr.name: tr.state for tr in run.tasks}
    assert states == {"check[0]": State.COMPLETED, "check[1]": State.COMPLETED,
                      "check[2]": State.FAILED}  # the first attempt's, kept as it ended
    ids = [tr.id for tr in run.tasks]
    assert len(set(ids)) == 3


def test_a_map_downstream_of_a_changed_map_runs_again_where_its_upstream_did() -> None:
    listing = listing_by_attempt([1, 2], [1, 5, 7])
    ran: list[tuple[str, int]] = []
    attempts: list[int] = []

    @task
    def load(x: int) -> int:
        ran.append(("load", x))
        return x

    @task
    def scale(x: int) -> int:
        ran.append(("scale", x))
        return 10 * x

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        scaled = scale.map(load.map(listing()))
        total = sum(scaled.result())
        if len(attempts) == 1:
            raise ValueError(f"total {total} is too small")
        return total

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == 130, run.message
    assert sorted(ran) == sorted([("load", 1), ("load", 2), ("scale", 1), ("scale", 2),
                                  ("load", 5), ("load", 7), ("scale", 5), ("scale", 7)])


def test_a_completed_plain_call_reruns_when_its_input_changed_or_its_upstream_ran() -> None:
    ran: list[str] = []
    attempts: list[int] = []

    @task
    def count(files: list[str]) -> int:
        ran.append(f"count{len(files)}")
        return len(files)

    @task
    def report(n: int) -> str:
        ran.append(f"report{n}")
        return f"{n} files"

    @flow(retries=1)
    def nightly() -> str:
        attempts.append(1)
        files = ["a"] if len(attempts) == 1 else ["a", "b"]
        said = report(count(files)).result()
        if len(attempts) == 1:
            raise ConnectionError("the mail server is down")
        return said

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == "2 files", run.message
    assert ran == ["count1", "report1", "count2", "report2"]
    assert [tr.name for tr in run.tasks] == ["count", "report"]  # the same task runs


def test_unchanged_inputs_that_have_no_plain_equality_are_reused() -> None:
    np = __import__("pytest").importorskip("numpy")
    ran: list[int] = []
    attempts: list[int] = []

    @task
    def total(values: Any) -> float:
        ran.append(1)
        return float(values.sum())

    @flow(retries=1)
    def nightly() -> float:
        attempts.append(1)
        value = total(np.arange(5.0)).result()  # a new array each attempt, equal content
        if len(attempts) == 1:
            raise ConnectionError("the share is not mounted yet")
        return value

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == 10.0, run.message
    assert ran == [1]


def test_the_message_of_the_next_attempt_says_why_the_last_one_failed() -> None:
    """It said "attempt 2 of 2 (attempt 1 failed: )" while attempt 2 ran: the reason was
    overwritten by the check for a cancelled caller."""
    from labloom.core.observers import add_run_observer

    runs: list[Any] = []
    seen: list[str] = []

    @flow(retries=1)
    def nightly() -> int:
        if not seen:
            seen.append("")
            raise ConnectionError("the share is not mounted yet")
        seen.append(runs[0].message)  # what the Flows panel and `labloom show` say now
        return 1

    remove = add_run_observer(runs.append)
    try:
        run = nightly.run()
    finally:
        remove()
    assert run.state is State.COMPLETED
    assert seen[1] == ("attempt 2 of 2 (attempt 1 failed: flow body raised ConnectionError: "
                       "the share is not mounted yet)")


def test_a_map_over_futures_in_another_order_waits_for_the_ones_it_gets_now() -> None:
    """Child i's upstream is the future at i now: a child given another task run's future
    must wait for that one (it ran again), not for the one it had."""
    attempts: list[int] = []
    ran: list[str] = []

    @task
    def fetch(name: str) -> str:
        ran.append(name)
        if name == "b" and len(attempts) == 1:
            raise ConnectionError("b's server is down")
        if name == "b":
            time.sleep(0.5)  # back, but slow: shout(b) must wait for it
        return name

    @task
    def shout(text: str) -> str:
        return text.upper()

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        a, b = fetch("a"), fetch("b")
        order = [a, b] if len(attempts) == 1 else [b, a]
        loud = shout.map(order)
        return loud.result()

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == ["B", "A"], run.message


@task
def stamp(name: str, folder: str) -> str:
    """Leaves a file per call (a Dask worker process's calls count too)."""
    import uuid

    Path(folder, f"{name}.{uuid.uuid4().hex}").write_text("ran")
    if name.endswith(".partial"):
        raise ValueError(f"{name} is still being written")
    return name.upper()


def test_a_replayed_map_takes_its_new_inputs_on_every_executor(
    tmp_path: Path, any_executor: Any,
) -> None:
    listing = listing_by_attempt(["a", "b.partial"], ["a", "b", "c"])
    attempts: list[int] = []

    @flow(retries=1)
    def nightly(folder: str) -> list[str]:
        attempts.append(1)
        parts = stamp.map(listing(), unmapped(folder))
        if len(attempts) == 1:
            parts.result()
        return parts.result()

    folder = tmp_path / "calls"
    folder.mkdir()
    run = nightly.run(folder=str(folder), executor=any_executor)
    assert run.state is State.COMPLETED and run.result() == ["A", "B", "C"], run.message
    ran = sorted(p.name.split(".")[0] + (".partial" if ".partial." in p.name else "")
                 for p in folder.iterdir())
    assert ran == ["a", "b", "b.partial", "c"]  # a reused


def test_a_value_given_to_every_child_that_changed_runs_every_child_again() -> None:
    attempts: list[int] = []
    ran: list[tuple[int, int]] = []

    @task
    def scale(x: int, factor: int) -> int:
        ran.append((x, factor))
        return x * factor

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        factor = 10 if len(attempts) == 1 else 100  # read from a config that was fixed
        scaled = scale.map([1, 2], unmapped(factor))
        if len(attempts) == 1:
            scaled.result()
            raise ValueError("factor 10 is out of date")
        return scaled

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == [100, 200], run.message
    assert sorted(ran) == [(1, 10), (1, 100), (2, 10), (2, 100)]


def test_retrying_a_run_whose_body_left_a_map_does_not_run_that_map_again() -> None:
    """The first attempt's map over a source that failed, left by the second attempt (it read
    the replica): `run.retry()` expanded it again, and the completed run ended Failed."""
    attempts: list[int] = []

    @task
    def primary() -> list[int]:
        raise ConnectionError("the primary is down")

    @task
    def replica() -> list[int]:
        return [1, 2]

    @task
    def scale(x: int) -> int:
        return 10 * x

    @flow(retries=1)
    def nightly() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            return scale.map(primary()).result()
        return replica().result()

    run = nightly.run()
    assert run.state is State.COMPLETED, run.message
    run.retry()
    assert run.state is State.COMPLETED and run.result() == [1, 2], run.message

