"""Pushed updates under load (issue 20): a big flow runs while JupyterLab shows it in Chromium.

Starts a real JupyterLab with labloom's server and Lab extensions (this checkout's), then runs a
flow of N no-op task runs (``one.map(range(N))`` on ``ThreadExecutor(4)``) in another process
writing the same SQLite store, alternately with no browser open and with one Chromium page
showing the Flows panel and 3 run tabs (the running run's, active, and two earlier runs').
Each round runs both modes back to back; the median of the rounds' ratios is the paired
measure. Printed per mode: the flow's time, the Lab server's CPU time during the flow (and per
second of it), and with the browser, how soon each task run's completion showed in its tab:
the page records each change of the tab's "task runs N/M done" (a MutationObserver, browser
clock) and a task run's latency is the first time the tab showed at least its rank among the
run's completed task runs, minus the time it ended (stored ``ended``; one machine, one clock),
for the task runs that ended after the tab was open and watched. The same is measured from
when the store had each completion (a thread reads ``task_states`` by rowid every 50 ms): the
flow's own writer commits in batches, and what it has not committed no view can show.

    python3 benchmarks/lab_push.py [--tasks 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from api_load import CHILD

from lab_helpers import CHROMIUM_ARGS, free_port, use_checkout_extension
from system_programs import require_program

OBSERVE = """id => {
  const facts = document.querySelector(`#labloom-run-${id} .labloom-RunView-facts`);
  window.__seen = [];
  window.__since = Date.now() / 1000;
  const note = () => {
    const dd = facts.querySelector('[data-fact="task runs"]');
    if (dd) window.__seen.push([Date.now() / 1000, dd.textContent]);
  };
  new MutationObserver(note).observe(facts, {childList: true, subtree: true, characterData: true});
  note();
}"""


class Lab:
    def __init__(self, tmp: Path) -> None:
        import secrets

        self.token, self.port = secrets.token_hex(16), free_port()
        self.env = dict(os.environ)
        for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                         ("LABLOOM_HOME", "labloom")]:
            self.env[var] = str(tmp / sub)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), self.env.get("PYTHONPATH", "")])
        self.env["LABLOOM_PROGRESS"] = "0"
        use_checkout_extension(tmp, self.env)
        self.home = Path(self.env["LABLOOM_HOME"])
        self.log = (tmp / "lab.log").open("w")
        (tmp / "notebooks").mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
             f"--ServerApp.token={self.token}", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.root_dir={tmp / 'notebooks'}"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        import urllib.request

        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.3)
        self.url = f"http://127.0.0.1:{self.port}/lab?token={self.token}&reset"

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def flow(self, n: int) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", CHILD, str(n)], env=self.env,
                                stdout=subprocess.PIPE, text=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def newest_run(home: Path, after: set[str]) -> str | None:
    if not (home / "labloom.db").exists():
        return None
    with sqlite3.connect(home / "labloom.db") as conn:
        rows = conn.execute("SELECT id FROM flow_runs ORDER BY created DESC LIMIT 5").fetchall()
    fresh = [r[0] for r in rows if r[0] not in after]
    return fresh[0] if fresh else None


def ended_times(home: Path, run_id: str) -> list[float]:
    with sqlite3.connect(home / "labloom.db") as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT ended FROM task_runs WHERE run_id = ? AND state = 'Completed'", (run_id,)))


def latencies(seen: list[list[Any]], ended: list[float]) -> list[float]:
    """Per completed task run: when the tab first showed at least its rank done."""
    times, counts = [], []
    for at, text in seen:
        done = int(text.split("/")[0])
        if not counts or done > counts[-1]:
            times.append(float(at))
            counts.append(done)
    out = []
    for rank, end in enumerate(ended, start=1):
        i = bisect.bisect_left(counts, rank)
        if i < len(counts):
            out.append(times[i] - end)
    return out


class StoreClock:
    """When each completion became visible in the store (committed by the flow's writer):
    (time, completed so far), read every 50 ms from task_states by rowid (a range read)."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.seen: list[list[Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(home, run_id), daemon=True)
        self.thread.start()

    def _run(self, home: Path, run_id: str) -> None:
        conn = sqlite3.connect(home / "labloom.db")
        after, done = 0, 0
        while not self.stop.is_set():
            top, new = conn.execute(
                "SELECT MAX(rowid), SUM(state = 'Completed' AND run_id = ?) FROM task_states "
                "WHERE rowid > ?", (run_id, after)).fetchone()
            if top is not None:
                after, done = top, done + int(new or 0)
                self.seen.append([time.time(), f"{done}/"])
            time.sleep(0.05)
        conn.close()


def one_flow(lab: Lab, n: int, page: Any, known: set[str]) -> dict[str, Any]:
    cpu = lab.cpu()
    proc = lab.flow(n)
    run_id = None
    clock = None
    if page is not None:
        deadline = time.monotonic() + 60
        while run_id is None and time.monotonic() < deadline:
            run_id = newest_run(lab.home, known)
            time.sleep(0.02)
        assert run_id, "the flow's run did not appear"
        clock = StoreClock(lab.home, run_id)
        page.locator(f'.labloom-run[data-run-id="{run_id}"]').click(timeout=30_000)
        page.locator(f"#labloom-run-{run_id} [data-fact='task runs']").wait_for(timeout=30_000)
        page.evaluate(OBSERVE, run_id)
    out, _ = proc.communicate(timeout=3600)
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu"] = lab.cpu() - cpu
    if page is not None:
        page.locator(f"#labloom-run-{result['id']} [data-fact='task runs']",
                     has_text=f"{n}/{n} done").wait_for(timeout=60_000)
        seen, since = page.evaluate("[window.__seen, window.__since]")
        ended = ended_times(lab.home, result["id"])
        # Only task runs that ended once the page watched: the first ranks were shown at once.
        result["latency"] = [x for x, end in zip(latencies(seen, ended), ended, strict=False)
                             if end >= since]
        assert clock is not None
        clock.stop.set()
        clock.thread.join()
        # The same, from when the store had it (the flow's writer committed it) to the tab.
        stored = latencies(clock.seen, [0.0] * len(ended))
        shown = latencies(seen, [0.0] * len(ended))
        result["push"] = [b - a for a, b, end in zip(stored, shown, ended, strict=False)
                          if end >= since]
        result["updates"] = len(seen)
    known.add(result["id"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="labloom-push-"))
    lab = Lab(tmp)
    known: set[str] = set()
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        # Two short runs first: the page's two other run tabs show them.
        for _ in range(2):
            known.add(one_flow(lab, 100, None, known)["id"])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=require_program("chromium"),
                                        args=CHROMIUM_ARGS, headless=True)
            for r in range(args.rounds):
                alone = one_flow(lab, args.tasks, None, known)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(lab.url)
                page.locator(".jp-LabShell").wait_for(timeout=90_000)
                page.locator('.jp-SideBar [title="Flows (labloom)"]').click()
                for old in sorted(known)[:2]:
                    page.locator(f'.labloom-run[data-run-id="{old}"]').click(timeout=30_000)
                watched = one_flow(lab, args.tasks, page, known)
                context.close()
                rows.append((alone, watched))
                lat = sorted(watched["latency"])
                print(f"round {r + 1}: alone {alone['seconds']:.2f}s (server CPU "
                      f"{alone['cpu']:.2f}s), watched {watched['seconds']:.2f}s (server CPU "
                      f"{watched['cpu']:.2f}s, {watched['updates']} tab updates), ratio "
                      f"{watched['seconds'] / alone['seconds']:.3f}; latency p50 "
                      f"{pct(lat, 0.5):.3f}s p99 {pct(lat, 0.99):.3f}s "
                      f"max {pct(lat, 1.0):.3f}s from the task's end; from the store to the tab "
                      f"{pct(watched['push'], 0.5):.3f}s p99 {pct(watched['push'], 0.99):.3f}s "
                      f"max {pct(watched['push'], 1.0):.3f}s", flush=True)
            browser.close()
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = [w["seconds"] / a["seconds"] for a, w in rows]
    per_s = [w["cpu"] / w["seconds"] for _, w in rows]
    idle = [a["cpu"] / a["seconds"] for a, _ in rows]
    p99 = [pct(w["latency"], 0.99) for _, w in rows]
    push = [pct(w["push"], 0.99) for _, w in rows]
    print(f"median ratio watched/alone {statistics.median(ratios):.3f}; server CPU per second "
          f"of flow: watched {statistics.median(per_s) * 100:.1f}% of a core, alone "
          f"{statistics.median(idle) * 100:.1f}%; p99 latency from the task's end "
          f"{statistics.median(p99):.3f}s, from the store {statistics.median(push):.3f}s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


if __name__ == "__main__":
    main()
