"""How fast the Flows panel opens on a store of 10,000 runs, in JupyterLab in headless Chromium.

Fills a fresh LABLOOM_HOME with real runs (small one-task flows, ``--runs`` of them), starts a
real JupyterLab with this checkout's extension (src/labloom/labextension, built by ``jlpm
build`` in js/) and server extension, and in each round loads Lab afresh, clicks the Flows icon
and times, in the page (performance.now), from the click's pointerdown to the frame after the
first page of rows is in the panel. Also reported: the request's own time (Resource Timing) and
the server's (tornado's log), so what the browser spends drawing is the rest.

    python benchmarks/panel_open.py [--runs 10000] [--rounds 5] [--fresh]

``--fresh``: every round in a new browser context (an empty cache), as the first one is.

Target (issue 20): under 300 ms with 10,000 runs in the store.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from labloom import LocalExecutor, flow, task

SERVER_TIME = re.compile(r"200 GET /labloom/api/runs\?limit=[1-9]\d*\S* .*? ([0-9.]+)ms")
# Armed before the click: the click's time, then the frame after the first rows are drawn.
ARM = """() => {
  window.__open = { long: [] };
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__open.long.push([e.startTime, e.duration]);
  }).observe({ type: 'longtask', buffered: true });
  // Rows count once the panel is shown with them: drawn after the click, or before it (read
  // while hidden); checked at each DOM change and each frame, whichever comes first.
  const check = () => {
    const panel = document.getElementById('labloom-flows');
    if (window.__open.rows || !window.__open.click || !panel || !panel.offsetWidth
        || !panel.querySelector('.labloom-run')) {
      return false;
    }
    window.__open.rows = -1;
    requestAnimationFrame(() => setTimeout(() => {
      window.__open.rows = performance.now();
      const asked = performance.getEntriesByType('resource')
        .filter(e => /labloom\\/api\\/runs\\?limit=[1-9]/.test(e.name));
      const last = asked.length ? asked[asked.length - 1] : null;
      window.__open.request = last ? last.duration : null;
      window.__open.asked = last ? last.startTime : null;
      window.__open.answered = last ? last.responseEnd : null;
      window.__open.shown = panel.querySelectorAll('.labloom-run').length;
      watch.disconnect();
    }));
    return true;
  };
  const frames = () => { if (!check() && !window.__open.rows) requestAnimationFrame(frames); };
  document.addEventListener('pointerdown', () => {
    window.__open.click = performance.now();
    requestAnimationFrame(frames);
  }, { capture: true, once: true });
  const watch = new MutationObserver(check);
  watch.observe(document.body, { childList: true, subtree: true });
}"""


@task
def step(x: int) -> int:
    return x + 1


@flow
def small(n: int = 1) -> list[int]:
    return step.map(range(n))  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_lab(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    built = ROOT / "src" / "labloom" / "labextension"
    if not (built / "package.json").is_file():
        sys.exit("build the extension first: cd js && jlpm build")
    extensions = tmp / "jupyter-path" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "labloom").symlink_to(built)
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "JUPYTER_PATH": str(tmp / "jupyter-path"),
           "JUPYTER_CONFIG_DIR": str(tmp / "c"), "JUPYTER_DATA_DIR": str(tmp / "d"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "r")}
    (tmp / "c" / "labconfig").mkdir(parents=True)
    (tmp / "c" / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    log_path = tmp / "lab.log"
    with log_path.open("w") as log:
        lab = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}",
             f"--ServerApp.token={token}", "--ServerApp.ip=127.0.0.1", "--ServerApp.log_level=DEBUG",
             "--ServerApp.jpserver_extensions={'labloom': True}", f"--ServerApp.root_dir={tmp}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            return lab, f"{base}/lab?token={token}&reset", log_path
        except OSError:
            if lab.poll() is not None or time.monotonic() > deadline:
                sys.exit("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fresh", action="store_true",
                        help="each round in a new browser context (an empty cache, as a fresh "
                             "browser), not only the first")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labloom-panel-bench-"))
    os.environ.update(LABLOOM_HOME=str(tmp / "home"), LABLOOM_PROGRESS="0")
    started = time.perf_counter()
    for _ in range(args.runs):
        small.run(executor=LocalExecutor())
    print(f"filled the store with {args.runs} runs in {time.perf_counter() - started:.0f} s")

    from playwright.sync_api import sync_playwright

    lab, url, log_path = start_lab(tmp)
    results: list[dict[str, float]] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            for i in range(args.rounds):
                if args.fresh and i:
                    context.close()
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                page.goto(url)
                icon = page.locator('.jp-SideBar [title="Flows (labloom)"]')
                icon.wait_for(timeout=90_000)
                page.wait_for_timeout(1000)  # Lab settles (its own requests, layout restore)
                page.evaluate(ARM)
                icon.click()
                page.wait_for_function("() => window.__open.rows > 0", timeout=30_000)
                results.append(page.evaluate("() => window.__open"))
            browser.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.pid, 15)
        lab.wait(timeout=30)
    server = [float(m.group(1)) for line in log_path.read_text().splitlines()
              if (m := SERVER_TIME.search(line))]
    opened = [r["rows"] - r["click"] for r in results]
    print(f"rows shown per open: {results[0]['shown']:.0f}")
    print(f"open, click to rows drawn: median {statistics.median(opened):.0f} ms, "
          f"max {max(opened):.0f} ms over {len(opened)} "
          f"{'fresh browser contexts' if args.fresh else 'page loads (the first one fresh)'} "
          f"({', '.join(f'{o:.0f}' for o in opened)})")
    for i, r in enumerate(results, start=1):
        # Where each open's time went: before its request left, the request, after it.
        blocked = sum(d for start, d in r["long"] if start + d > r["click"] and start < r["rows"])
        if r.get("asked") is not None and r["asked"] < r["click"]:
            print(f"  round {i}: {r['rows'] - r['click']:.0f} ms, rows drawn before the click "
                  f"(read {r['click'] - r['answered']:.0f} ms before it); long tasks in it: "
                  f"{blocked:.0f} ms")
        elif r.get("asked") is not None:
            print(f"  round {i}: {r['rows'] - r['click']:.0f} ms = {r['asked'] - r['click']:.0f} "
                  f"before the request + {r['answered'] - r['asked']:.0f} request + "
                  f"{r['rows'] - r['answered']:.0f} drawing; long tasks in it: {blocked:.0f} ms")
    requests = [r["request"] for r in results if r.get("request")]
    if requests:
        print(f"  its GET runs request (Resource Timing): median "
              f"{statistics.median(requests):.0f} ms")
    if server:
        print(f"  the server's time for GET runs?limit=N: median {statistics.median(server):.1f} ms"
              f" ({len(server)} requests: {', '.join(f'{t:.1f}' for t in server)})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
