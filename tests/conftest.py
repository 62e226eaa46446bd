"""Shared fixtures: every test gets its own LABLOOM_HOME, so the run store and the result
folder never touch the user's ``~/.labloom`` nor leak between tests.

The store, schedule and limit tests run twice, on SQLite and on a real PostgreSQL server that
the session starts (``pg_server.py``): ``store_backend`` is "sqlite" or "postgresql", and for
"postgresql" each test gets a fresh database through ``LABLOOM_DATABASE_URL``. Without a server
installed those cases skip with the install hint; with ``LABLOOM_REQUIRE_SYSTEM=1`` (CI) they
fail instead.

What a test leaves running (its runs, its stores' writers and pools) is stopped at its end,
named in its report when it cannot be (``nothing_left_running``, ``teardown_helpers.py``): a
test that fails mid-run stays one failure, not the cause of the worker's next ones."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from every_executor import any_executor, dask_cluster  # noqa: F401  (fixtures: see there)
from lab_helpers import lab, page  # noqa: F401  (fixtures: a real JupyterLab, a browser page)
from system_programs import require_program, require_system
from teardown_helpers import LeftBehind

pytest_plugins = ["pytester"]  # tests of the suite's own fixtures run a pytest inside

SRC = Path(__file__).resolve().parents[1] / "src"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pyproject's addopts hand the suite to pytest-xdist's workers. Without xdist (`-p
    # no:xdist`, or not installed) its two options there would be an error: take them and run
    # in this one process, as `-n 0` does.
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist")
        group.addoption("--numprocesses", help="without pytest-xdist: ignored, tests run here")
        group.addoption("--dist", help="without pytest-xdist: ignored, tests run here")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(program): skip without this system program (fail in CI); see system_programs"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require_program(*mark.args)


# Modules whose every test runs on both store backends.
BOTH_BACKENDS = {
    "test_store_schema", "test_store_runs", "test_store_rows", "test_dask_limits_store",
    "test_limits_order", "test_schedule_claims", "test_schedule_cli", "test_schedule_serve",
    "test_cli_history", "test_cli_db", "test_cache", "test_two_hosts", "test_team_access",
    "test_run_at_exit", "test_store_follow", "test_experiments_store", "test_server_launch",
    "test_experiments_pages", "test_experiments_snapshot", "test_limits_heads",
    "test_experiments_format", "test_experiments_attempts", "test_experiments_stale_calls",
    "test_cli_delete", "test_store_odd_text", "test_server_delete", "test_cli_cancel",
    "test_experiments_across_rows", "test_experiments_odd_text", "test_experiments_killed",
    "test_store_copy", "test_schedule_clock", "test_kept_parameters", "test_store_stop_writing",
    "test_alerts_kept", "test_run_alerts_kept", "test_bracketed_task_names",
    "test_run_alerts_dead", "test_run_alerts_gaps", "test_interrupt_slots",
    "test_run_alerts_two_homes", "test_interrupt_dask_slots", "test_interrupt_reports",
    "test_store_settings_cli", "test_serve_smtp_port", "test_left_map", "test_cli_cancel_deleted",
    "test_serve_refusals", "test_left_map_rest",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_BACKENDS and "store_backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("postgresql_only")
        metafunc.parametrize("store_backend", ["postgresql"] if only else ["sqlite", "postgresql"],
                             indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL server for the session, stopped at its end."""
    import pg_server

    require_system(pg_server.missing())
    server = pg_server.PostgresServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def ctrl_c_reaches_the_test() -> None:
    """SIGINT raises KeyboardInterrupt in every test, as in a terminal, whatever the process
    started with or an earlier test left: a shell starts a background job (a CI runner's `cmd
    &`, `nohup`) with SIGINT ignored, a test may put back the handler it found, a Jupyter
    server sets its own. The tests that press Ctrl-C (a kernel's interrupt, `labloom run` in a
    terminal: its child inherits an ignored SIGINT) passed or failed by which test had run
    before them in the same process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[LeftBehind]:
    """Set up before the test's other function fixtures (``labloom_home`` asks for it), so
    torn down after them all: the stores the test opened are let go of (their writers stop rather
    than retry for minutes), what still runs after that is named once, as this test's error.
    ``store_backend`` cancels the test's runs first, while its environment holds."""
    left = LeftBehind()
    yield left
    left.cancel_runs()
    left.let_go_of_stores()
    named = left.still_running()
    if named:
        pytest.fail("left running after the test, abandoned (a later test may see it): "
                    + "; ".join(named), pytrace=False)


@pytest.fixture(autouse=True)
def labloom_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nothing_left_running: LeftBehind
) -> Iterator[Path]:
    """Every test gets its own state folder; nothing touches ~/.labloom."""
    home = tmp_path / "labloom-home"
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    # The store's reserve of room (store/room.py), 8 MB allocated beside each test's store, is
    # gigabytes over a session on the shared disk: a small one, made and freed all the same.
    monkeypatch.setenv("LABLOOM_STORE_RESERVE", "0.25")
    # set, then deleted: the fixture's undo then removes whatever a test writes there
    monkeypatch.setenv("LABLOOM_DATABASE_URL", "")
    monkeypatch.delenv("LABLOOM_DATABASE_URL")
    yield home  # limits live in this store too, so they end with the test


@pytest.fixture(autouse=True)
def store_backend(
    request: pytest.FixtureRequest, labloom_home: Path, monkeypatch: pytest.MonkeyPatch,
    nothing_left_running: LeftBehind,
) -> Iterator[str]:
    """The store's backend for this test: SQLite in LABLOOM_HOME, or a fresh PostgreSQL
    database (only in the modules listed in BOTH_BACKENDS)."""
    kind = getattr(request, "param", "sqlite")
    if kind != "postgresql":
        yield kind
        nothing_left_running.cancel_runs()
        return
    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    url = server.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    yield kind
    nothing_left_running.cancel_runs()  # their ends are written before the database goes
    from labloom.store import db

    db.forget(url)  # close this process's pool before the database goes
    server.drop_database(name)


@pytest.fixture
def subprocess_env(labloom_home: Path) -> dict[str, str]:
    """Environment for a child process that imports this checkout's labloom."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH", "")]))
    env["LABLOOM_HOME"] = str(labloom_home)
    return env


@pytest.fixture(params=["local", "threads"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def killed_workers_come_back() -> Iterator[None]:
    """For tests that SIGKILL a LocalCluster's worker and need the new one its nanny starts. The
    cluster closes a nanny, for good, whose new worker has not joined within
    distributed.deploy.lost-worker-timeout (15 s): on a loaded machine a worker's start took
    longer (test_dask_lost_values beside test_schedule_serve under -n 2): the run waited out
    LABLOOM_RECOMPUTE_WAIT (120 s) for a worker, and the module's cluster had none left for its
    later tests. The setting is read when the worker is lost."""
    dask = pytest.importorskip("dask")
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "600s"}):
        yield


@pytest.fixture(scope="module")
def one_worker_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real LocalCluster, one worker process with two threads, for a module's Dask cases; a
    task that kills its worker fails at once (allowed-failures=0) instead of killing more.
    Made before any test's LABLOOM_HOME: the worker gets a state folder of its own."""
    distributed = pytest.importorskip("distributed")
    import dask

    home = str(tmp_path_factory.mktemp("worker-home"))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
            env={"LABLOOM_HOME": home},
        )
    yield cluster
    cluster.close()


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch, labloom_home: Path) -> Iterator[Any]:
    """A real IPython shell with labloom loaded; widgets off, threads by default."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    for name in ("LABLOOM_EXECUTOR", "LABLOOM_ADDRESS", "LABLOOM_WIDGET"):
        monkeypatch.delenv(name, raising=False)
    real_main = sys.modules["__main__"]
    shell = InteractiveShell.instance()
    # The shell installs its own __main__, which lacks __spec__; Dask's worker processes are
    # spawned, and spawning reads __main__.__spec__.
    if not hasattr(sys.modules["__main__"], "__spec__"):
        sys.modules["__main__"].__spec__ = None
    shell.run_line_magic("load_ext", "labloom")
    shell.run_line_magic("config", "Labloom.widget = False")
    shell.run_line_magic("config", "Labloom.executor = 'threads'")
    yield shell
    shell.reset(new_session=False)
    sys.modules["__main__"] = real_main
