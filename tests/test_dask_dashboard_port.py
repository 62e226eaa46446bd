"""The dashboard of a LocalCluster labloom starts: on the preferred port (8787, or
``LABLOOM_DASHBOARD_PORT``: here a port the test picks, so that what holds 8787 on this machine
does not matter) when it is free; when another process holds it, on another free port, with no
"Port ... is already in use" warning from distributed, and the run's record names the actual
link. On real LocalClusters (one per run, and the embedded one)."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from labloom import DaskExecutor, State, flow, task

pytest.importorskip("distributed")


@task
def one() -> int:
    return 1


@flow
def tiny() -> int:
    return one()


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A listener on a port the system gives, as another process's dashboard would hold 8787."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(executor: DaskExecutor) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tiny.run(executor=executor)
    assert run.state is State.COMPLETED, run.message
    return run, [str(w.message) for w in caught]


def _per_run(**options: Any) -> DaskExecutor:
    return DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": False, **options})


def test_a_held_port_is_left_for_another_free_one_without_a_warning(
    held: socket.socket, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: distributed warned "Port N is already in use. Perhaps you already have a
    cluster running? Hosting the HTTP server on port M instead" on the user's output."""
    port = held.getsockname()[1]
    monkeypatch.setenv("LABLOOM_DASHBOARD_PORT", str(port))
    run, said = _run(_per_run())
    assert not [text for text in said if "already in use" in text], said
    link = urlsplit(run.metadata["dashboard"])
    assert link.port not in (None, port), run.metadata
    assert link.path == "/status"


def test_dasks_own_default_port_held_is_left_without_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """8787 held (by this test, or by whatever holds it on this machine already: the same
    case), with no port preferred in the environment. Fails before as the user saw it."""
    monkeypatch.delenv("LABLOOM_DASHBOARD_PORT", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        try:
            listener.bind(("127.0.0.1", 8787))
            listener.listen()
        except OSError:
            pass  # held already: by another process, as in the user's case
        run, said = _run(_per_run())
    assert not [text for text in said if "already in use" in text], said
    assert urlsplit(run.metadata["dashboard"]).port not in (None, 8787), run.metadata


def test_the_preferred_port_is_taken_when_free(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("LABLOOM_DASHBOARD_PORT", str(port))
    run, said = _run(_per_run())
    assert not [text for text in said if "already in use" in text], said
    assert urlsplit(run.metadata["dashboard"]).port == port, run.metadata


def test_a_port_the_options_name_stands(held: socket.socket) -> None:
    """The user asked for that port: distributed's own warning is theirs to see."""
    port = held.getsockname()[1]
    run, said = _run(_per_run(dashboard_address=f":{port}"))
    assert [text for text in said if f"Port {port} is already in use" in text], said
    assert urlsplit(run.metadata["dashboard"]).port not in (None, port), run.metadata


def test_the_embedded_cluster_leaves_a_held_port_without_a_warning(
    held: socket.socket, monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = held.getsockname()[1]
    monkeypatch.setenv("LABLOOM_DASHBOARD_PORT", str(port))
    # Options of its own: an embedded cluster of its own (kept for the process, as any).
    executor = DaskExecutor(n_workers=1, threads_per_worker=1, processes=False,
                            memory_limit="1GiB")
    run, said = _run(executor)
    assert not [text for text in said if "already in use" in text], said
    assert urlsplit(run.metadata["dashboard"]).port not in (None, port), run.metadata


@pytest.mark.parametrize("per_run", [True, False], ids=["per run", "embedded"])
def test_a_port_setting_that_is_no_port_raises_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, per_run: bool,
) -> None:
    """As every other LABLOOM_ number setting does (core/env_numbers.py). Before: a warning,
    and the dashboard on 8787 (or another free port)."""
    from labloom import ClusterConfigError

    monkeypatch.setenv("LABLOOM_DASHBOARD_PORT", "dashboard")
    executor = _per_run() if per_run else DaskExecutor(
        n_workers=1, threads_per_worker=1, processes=False, memory_limit="1.5GiB")
    with pytest.raises(ClusterConfigError, match=r"^\[labloom\] LABLOOM_DASHBOARD_PORT must be "
                       r"a port number from 0 to 65535 .*, got 'dashboard': set it to one"):
        tiny.run(executor=executor)
