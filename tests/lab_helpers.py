"""A real JupyterLab for browser tests: started on loopback with a random token, every
Jupyter/IPython/labloom folder in tmp, driven by Playwright in Debian's chromium, stopped again.

The ``lab`` and ``page`` fixtures (registered in conftest.py) are shared by the notebook widget
tests (test_browser.py) and the Flows panel tests (test_lab_panel.py), and so are the steps
every browser test takes: open Lab and its Flows panel (``open_lab``, ``click_flows_icon``), or
a notebook (``open_notebook``); start runs beside it (``flows_folder``, ``start_run``,
``stored_runs``, ``wait_for_run``); wait for a run's row and open its tab (``run_row``,
``open_run``); wait on what the page's event handlers collected (``wait_in_page``). For tests marked
``lab_extension``, Lab loads labloom's JupyterLab extension and server extension: the installed
ones with LABLOOM_TEST_INSTALLED=1, else this checkout's (its built labextension,
src/labloom/labextension, and src/ on PYTHONPATH).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, wait_for, write
from lab_kill import kill_lab
from labloom.store import open_store
from system_programs import require_program

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BUILT_LABEXTENSION = ROOT / "src" / "labloom" / "labextension"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    token = secrets.token_hex(16)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    env = dict(os.environ)
    for var, sub in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
        ("LABLOOM_HOME", "labloom"),
    ]:
        env[var] = str(tmp_path / sub)
    # The "python3" kernelspec runs `python` from PATH: make that this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if not os.environ.get("LABLOOM_TEST_INSTALLED"):
        # Kernels import labloom from this checkout. With LABLOOM_TEST_INSTALLED=1 they use
        # the installed package instead: that checks `pip install .` gives a working widget.
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        if request.node.get_closest_marker("lab_extension"):
            use_checkout_extension(tmp_path, env)
    # No "get Jupyter news?" toast over the cells.
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
            # Port 0: the server takes a port that is free as it binds, and says which in its
            # info file. A port chosen here could be taken meanwhile (another process, a kernel),
            # and the server would then quietly serve on another one.
            f"--ServerApp.token={token}", "--port=0", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={notebooks}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its kernels are in its process group: we stop them all
    )
    try:
        base = lab_address(proc, tmp_path / "runtime", token, tmp_path / "lab.log")
        yield f"{base}/{{}}?token={token}", notebooks
    finally:
        kill_lab(proc)
        log.close()


def lab_address(
    proc: subprocess.Popen[bytes], runtime: Path, token: str, log: Path, timeout: float = 120
) -> str:
    """The address of the server ``proc`` once it answers: read from the info file it writes
    once started (jpserver-PID.json in its runtime folder). A first start on a fresh machine
    (no bytecode yet, a loaded CI) takes far longer than one here: the deadline is generous,
    and a server that exits ends the wait at once."""
    deadline = time.monotonic() + timeout
    info = runtime / f"jpserver-{proc.pid}.json"
    base = None
    while True:
        try:
            if base is None and info.is_file():
                base = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
            if base is not None:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    return base
        except (OSError, ValueError, KeyError):
            pass  # not listening yet, or the info file half written
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()}")
        time.sleep(0.3)


@pytest.fixture
def page(lab: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_program("chromium"), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def wait_for_kernel_connected(url: str, notebook: str, timeout: float = 90.0) -> None:
    """Wait until the page holds a websocket to ``notebook``'s kernel and the kernel is idle.

    Notebook 7's toolbar indicator reads idle before any kernel exists, and "Run All" at that
    moment runs nothing; the server's own count of kernel connections is the signal that holds.
    """
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url.format("api/sessions"), timeout=10) as reply:
                seen = json.load(reply)
        except OSError:  # a server busy starting the kernel may answer late: ask again
            time.sleep(0.2)
            continue
        for session in seen:
            kernel = session.get("kernel") or {}
            if (
                session.get("path", "").endswith(notebook)
                and kernel.get("connections", 0) >= 1
                and kernel.get("execution_state") == "idle"
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"no idle kernel with a browser connection for {notebook}: {seen}")


IDLE_KERNEL = "Python 3 (ipykernel) | Idle"  # Lab's status bar once the kernel can run cells


def wait_for_idle_kernel(page: Any, timeout: float = 90.0) -> None:
    """Wait until Lab's status bar says the notebook's kernel is idle: cells run before that
    moment are lost."""
    page.get_by_text(IDLE_KERNEL).wait_for(timeout=timeout * 1000)


def run_all_cells(page: Any) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()


def open_notebook(
    page: Any, lab: tuple[str, Path], name: str, cells: list[str], notebook_7: bool = False
) -> None:
    """Write ``cells`` as the notebook ``name`` in the lab's folder, open it in Lab (or in
    Notebook 7), wait until its kernel is ready, and run all its cells."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    url, folder = lab
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    nbformat.write(nb, folder / name)
    if notebook_7:
        page.goto(url.format(f"notebooks/{name}"))
        # Notebook 7 shows the kernel's state as a circle in its toolbar, not a status bar text.
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=90_000
        )
        wait_for_kernel_connected(url, name)
    else:
        page.goto(url.format(f"lab/tree/{name}") + "&reset")
        wait_for_idle_kernel(page)
    run_all_cells(page)


def use_dark_theme(page: Any) -> None:
    """Settings > Theme > JupyterLab Dark, as a user picks it; returns once the page says so
    (its stylesheet may come a moment later: wait for a colour it sets)."""
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    page.locator('body[data-jp-theme-light="false"]').wait_for(state="attached", timeout=20_000)


FLOWS_ICON = '.jp-SideBar [title="Flows (labloom)"]'  # the Flows panel's icon in Lab


def click_flows_icon(page: Any) -> Any:
    """Click the Flows icon of Lab's left side bar (it shows the panel, or hides it); the
    panel's locator."""
    page.locator(FLOWS_ICON).click()
    return page.locator("#labloom-flows")


def open_lab(page: Any, url: str) -> tuple[Any, list[str]]:
    """Open Lab on a fresh layout and its Flows panel: the panel's locator, and the messages of
    the page's dialogs (a hostile log line must open none), dismissed as they come."""
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(url.format("lab") + "&reset")
    # Lab has restored its (reset) layout once it opened a Launcher in the empty main area:
    # before that its router still runs commands, which close a palette opened meanwhile.
    page.locator(".jp-LabShell .jp-Launcher").wait_for(timeout=90_000)
    panel = click_flows_icon(page)
    panel.wait_for(timeout=30_000)
    return panel, alerts


def drag_side_bar_to(page: Any, panel: Any, width: float) -> None:
    """Drag the handle between Lab's left side bar and its main area, as a user does, until
    ``panel`` (shown in that side bar) is ``width`` CSS pixels wide. Lab's side bar is 250 px
    at least (its default width, --jp-sidebar-min-width): narrower, the variable is set first,
    as a user's own stylesheet (Settings > Theme's custom CSS) or a theme may set it, and the
    Flows panel hidden and shown again (Lab reads the side bar's least width as it shows it)."""
    if width < 250:
        page.add_style_tag(content=f":root:root {{ --jp-sidebar-min-width: {width}px; }}")
        click_flows_icon(page).wait_for(state="hidden", timeout=20_000)
        click_flows_icon(page).wait_for(timeout=20_000)
    box = panel.bounding_box()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    grip = handle.bounding_box()
    x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + width - box["width"], y, steps=5)
    page.mouse.up()
    wait_for(lambda: abs(panel.bounding_box()["width"] - width) < 2, 20, f"the side bar {width} px wide")


# What of ``element`` and the blocks in it the user cannot see without hovering or scrolling:
# a box wider or taller than it shows (its text cut, or wrapped out of a fixed height), or
# reaching out of the side bar's panel. Taller by a few pixels is no cut: Lab's 32 px buttons
# with a padding overflow by their line's leading, the glyphs whole; a wrapped line overflows
# by a whole line.
CLIPPED = """(element, panel) => {
    const edge = panel.getBoundingClientRect();
    const cut = [];
    for (const e of [element, ...element.querySelectorAll('*')]) {
        const style = getComputedStyle(e);
        if (style.display === 'inline') continue;  // no box of its own: its block's says it
        if (!e.getClientRects().length) continue;  // not drawn (hidden, a select's options)
        const box = e.getBoundingClientRect();
        if (e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight + 4
            || box.left < edge.left || box.right > edge.right)
            cut.push([e.className, e.scrollWidth, e.clientWidth, box.left, box.right, edge.right]);
    }
    if (panel.scrollWidth > panel.clientWidth) cut.push(['the panel scrolls sideways']);
    return cut;
}"""


def clipped(element: Any, panel: Any) -> list[Any]:
    """The boxes of ``element`` (itself and inside) cut or out of ``panel``: [] when whole."""
    return list(element.evaluate(CLIPPED, panel.element_handle()))


# The Flows panel reads the run list again this often once the server pushes (js/src/panel.ts
# SAFETY_NET): what no event carries (a run's message, a run another process deleted) shows then.
PANEL_SAFETY_NET = 15.0


def next_list_read(page: Any) -> None:
    """Bring the panel's next read of the run list (its safety net) forward to now: the page's
    clock jumps past it, so a test of what that read shows does not sit out its 15 s. The page
    must run on Playwright's clock, installed before Lab opened (``page.clock.install()``)."""
    page.clock.fast_forward(int(PANEL_SAFETY_NET * 1000))


def stop_timers(page: Any) -> None:
    """Stop the page's timers until ``page.clock.resume()``: no poll, safety net or catch-up
    (each a timer) reads anything, so what shows came from a push or from what a click started
    (a fetch and its answer run without timers); ``page.clock.run_for(ms)`` runs what falls
    due. The page must run on Playwright's clock, installed before Lab opened
    (``page.clock.install()``). Timers due in the next second fire first, once."""
    from playwright.sync_api import Error

    def pause_a_second_ahead() -> None:  # the page's clock in ms, pause_at's in seconds
        page.clock.pause_at((page.evaluate("Date.now()") + 1000) / 1000)

    try:
        pause_a_second_ahead()
    except Error as error:
        # A round trip slower than the second: paused, then refused to go back in time. The
        # second look reads the paused clock.
        if "past" not in str(error):
            raise
        pause_a_second_ahead()


@contextlib.contextmanager
def timers_stopped(page: Any) -> Iterator[None]:
    """The page's timers stopped meanwhile (``stop_timers``), then running again."""
    stop_timers(page)
    try:
        yield
    finally:
        page.clock.resume()


def requests_answered(page: Any, part: str = "/labloom/api/") -> Callable[[], bool]:
    """Watch the page's requests whose URL holds ``part`` from now on: the check returned says
    whether every one made so far was answered (or failed). Wait for it with ``wait_in_page``
    (the handlers run only inside Playwright's calls)."""
    asked: list[str] = []
    answered: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if part in r.url else None)
    for ended in ("requestfinished", "requestfailed"):
        page.on(ended, lambda r: answered.append(r.url) if part in r.url else None)
    return lambda: len(answered) >= len(asked)


def wait_pushed(page: Any, locator: Any, timeout: float, what: str) -> None:
    """Wait for ``locator`` to show while the page's timers are stopped (``stop_timers``) and
    its clock stands still: what falls due at once runs (the read an event asks for, a zero
    delay), no poll or safety net falls due however long the wait. So what shows, shows
    because the server pushed it."""

    def shown() -> bool:
        page.clock.run_for(0)
        return bool(locator.is_visible())

    wait_in_page(page, shown, timeout, f"{what}, pushed")


def flows_folder(tmp_path: Path, source: str) -> tuple[Path, Path]:
    """The Lab server's LABLOOM_HOME (see ``lab``) and a work folder holding ``source`` as
    flows.py, for ``start_run`` and ``labloom run flows.py:NAME``."""
    home, work = tmp_path / "labloom", tmp_path / "work"
    write(work / "flows.py", source)
    return home, work


def start_run(home: Path, work: Path, target: str, **env: str) -> subprocess.Popen[str]:
    """``labloom run flows.py:TARGET`` beside the Lab server, in its own process (``env``:
    more of its environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", f"flows.py:{target}"],
        env=cli_env(home, LABLOOM_PROGRESS="0", **env), cwd=work, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def stored_runs(home: Path, flow: str) -> list[Any]:
    """The runs of ``flow`` in the store at ``home``, newest first (none before it exists)."""
    if not (home / "labloom.db").exists():
        return []
    with open_store(home / "labloom.db") as store:
        return store.list_runs(flow=flow)


def wait_for_run(home: Path, flow: str, timeout: float = 60) -> Any:
    """The one run of ``flow``, once the store holds it (a run started beside the server)."""
    [run] = wait_for(lambda: stored_runs(home, flow), timeout, f"the run of {flow} in the store")
    return run


def wait_in_page(page: Any, check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``wait_for`` for a check that reads what Playwright's handlers collect (``page.on``,
    ``page.route``): the sync API runs those handlers only inside its own calls, so between
    looks this waits on the page's clock; ``time.sleep`` would starve them until the deadline."""
    return wait_for(check, timeout, what,
                    pause=lambda seconds: page.wait_for_timeout(seconds * 1000))


def in_state(page: Any, locator: Any, state: str) -> Any:
    """``locator`` once its element says ``data-state=STATE`` (a widget, a row, a node)."""
    return locator.and_(page.locator(f'[data-state="{state}"]'))


def run_row(panel: Any, run_id: str, state: str | None = None) -> Any:
    """The run's row in the Flows panel (in ``state``, when given). Read a row's texts with
    ``text_content()``: rows are ``content-visibility: auto``, and Chromium's ``innerText`` of
    a row not laid out yet (a panel just opened, a row scrolled away) is empty."""
    row = panel.locator(f'.labloom-run[data-run-id="{run_id}"]')
    return row if state is None else in_state(panel.page, row, state)


def open_run(page: Any, panel: Any, run_id: str) -> Any:
    """Click the run's row in the Flows panel: the view of the run tab it opens."""
    run_row(panel, run_id).click()
    return page.locator(f"#labloom-run-{run_id}")


def cell_widget(page: Any, index: int) -> Any:
    """The labloom widget in the notebook's code cell ``index`` (from 0)."""
    return page.locator(".jp-CodeCell").nth(index).locator(".labloom-widget")


def wait_or_shot(page: Any, locator: Any, name: str, timeout: float = 60.0) -> None:
    """Wait for ``locator`` to show; if it does not, keep a screenshot of the page first."""
    try:
        locator.wait_for(timeout=timeout * 1000)
    except Exception:
        shot(page, name)
        raise


def shot(page: Any, name: str, locator: Any = None) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path


def use_checkout_extension(tmp_path: Path, env: dict[str, str]) -> None:
    """Serve this checkout's labextension and enable its server extension."""
    if not (BUILT_LABEXTENSION / "package.json").is_file():
        pytest.fail(
            "labloom's JupyterLab extension is not built: run `pip install -e .` (or "
            "`jlpm --cwd js install && jlpm --cwd js build`)", pytrace=False,
        )
    extensions = tmp_path / "jupyter-path" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "labloom").symlink_to(BUILT_LABEXTENSION)
    env["JUPYTER_PATH"] = str(tmp_path / "jupyter-path")
    config = tmp_path / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"labloom": True}}})
    )
