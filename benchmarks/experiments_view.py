"""How long the Experiments view takes to show 350 rows with a chart, in Chromium (issue 19:
under 300 ms after the click).

Starts a JupyterLab with this checkout's extension (tests/lab_helpers.py's), runs a sweep of
350 children logging four params, a metric and a five-step curve, twice: once with the real
`labloom run` (the Lab run tab reads it from the store through the REST routes) and once in a
notebook cell (the cell's DAG widget asks the kernel). In each host it clicks the button that
opens the view and times, inside the page, from the click to the frame after the table holds
its rows, the summary says "350 rows" and Plot's chart holds a dot per row. The first opening
is reported apart from the next ones (each a fresh question to the server or kernel: the view
asks again on every opening).

    python3 benchmarks/experiments_view.py --rounds 10 [--big 100000]

With ``--big N`` it also runs a map of N children each logging a param and a metric, opens its
Lab run tab's view (more than 5,000 rows: the table pages from the server) and times the first
rows (a partial page, docs/rest-api.md), the complete count replacing them, a jump to the middle
of the table (the rows there asked for and drawn), and a sort.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_helpers import CHROMIUM_ARGS, lab
from system_programs import require_program

N = 350
TASKS = """
from labloom import log_metric, log_params

def train(i):
    depth, trees = 2 + i % 7, 50 * (1 + i // 7 % 5)
    log_params(max_depth=depth, n_estimators=trees, criterion=("gini", "entropy")[i % 2], seed=i // 70)
    for epoch in range(5):
        log_metric("loss", 1.0 / (depth + epoch + 1), step=epoch)
    return {"auc": 0.5 + depth / 20 + trees / 10000 + (i % 3) / 1000}
"""
FLOW = f"""
from labloom import flow, log_metrics, log_params, task
{TASKS.replace("def train", "@task(metrics=['auc'])" + chr(10) + "def train")}

@flow(executor="threads")
def sweep():
    return train.map(range({N}))

@task
def tiny(i):
    log_params(i=i, parity=i % 2)
    log_metrics(auc=(i * 7919 % 1000) / 1000)

@flow(executor="threads")
def big(n: int = 100):
    return tiny.map(range(n))
"""

# Runs in the page: click, then wait frame by frame for the rows, the summary and the dots;
# the time is taken at the frame after (the one that paints them).
MEASURE = """async ([button, view, n]) => {
  const box = () => document.querySelector(view);
  const ready = () => {
    const v = box();
    return v && !v.hidden
      && v.querySelectorAll('.labloom-exp-row[data-task-run-id]').length > 0
      && v.querySelector('.labloom-exp-summary').textContent.startsWith(n + ' rows')
      && v.querySelectorAll(".labloom-exp-chart svg g[aria-label='dot'] circle").length >= n;
  };
  const t0 = performance.now();
  document.querySelector(button).click();
  await new Promise((resolve) => { const check = () => (ready() ? resolve() : requestAnimationFrame(check)); check(); });
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const total = performance.now() - t0;
  // Of which waiting on the server (Lab's REST requests; the kernel's answers are not fetches).
  const asked = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/experiments') && e.startTime >= t0)
    .reduce((a, e) => a + e.duration, 0);
  return [total, asked];
}"""


class _Request:
    """What the ``lab`` fixture reads of pytest's request: whether to serve the extension."""

    class node:
        @staticmethod
        def get_closest_marker(name: str) -> bool:
            return name == "lab_extension"


def rounds(page: Any, button: str, view: str, n: int) -> list[tuple[float, float]]:
    times = []
    for _ in range(n):
        times.append(tuple(page.evaluate(MEASURE, [button, view, N])))
        page.locator(f"{view} .labloom-exp-close").click()  # closed: the next click reopens
    return times


# The big run: from the click to its first rows; then from a jump to the middle to the rows
# there drawn; then from a click on a metric's header to the rows sorted by it.
BIG = """async ([view, n]) => {
  const box = () => document.querySelector(view);
  const frames = (ready) => new Promise((resolve) => { const check = () => (ready() ? resolve() : requestAnimationFrame(check)); check(); });
  const loaded = () => box().querySelectorAll('.labloom-exp-row[data-task-run-id]').length > 0
    && !box().querySelector('.labloom-exp-loading');
  const times = {};
  let t0 = performance.now();
  document.querySelector('.labloom-RunView button.labloom-experiments-toggle').click();
  await frames(() => box() && box().getAttribute('data-mode') === 'server' && loaded());
  times.open = performance.now() - t0;
  times.partial = box().getAttribute('data-partial') === 'true';
  const first = performance.getEntriesByType('resource').find((e) => e.name.includes('/experiments?') && e.startTime >= t0);
  times.request = first ? first.duration : NaN;
  // The complete answer replacing a partial first page: the whole count, not partial.
  await frames(() => box().getAttribute('data-partial') === 'false' && box().getAttribute('data-total') === String(n) && loaded());
  times.whole = performance.now() - t0;
  const table = box().querySelector('.labloom-exp-table');
  t0 = performance.now();
  table.scrollTop = table.scrollHeight / 2;
  await frames(() => { const r = box().querySelector('.labloom-exp-row[data-task-run-id]'); return loaded() && r && Number(r.dataset.pos) > 1000; });
  times.jump = performance.now() - t0;
  t0 = performance.now();
  box().querySelector(".labloom-exp-th[data-column='metrics.auc']").click();
  table.scrollTop = 0;
  await frames(() => loaded() && box().querySelector(".labloom-exp-row[data-pos='0'] .labloom-exp-td[data-column='metrics.auc']")?.textContent === '0.999');
  times.sort = performance.now() - t0;
  return times;
}"""


def report(host: str, times: list[tuple[float, float]]) -> None:
    warm = [t for t, _ in times[1:]]
    asked = statistics.median(a for _, a in times[1:])
    print(f"{host}: first {times[0][0]:.0f} ms; next {len(warm)}: median "
          f"{statistics.median(warm):.0f} ms (of which REST requests {asked:.0f} ms), min "
          f"{min(warm):.0f}, max {max(warm):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--big", type=int, default=0, help="also a run of this many rows")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, contextlib.contextmanager(lab.__wrapped__)(
        Path(tmp), _Request()
    ) as (url, notebooks):
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "flows.py").write_text(FLOW)
        env = {**os.environ, "LABLOOM_HOME": str(Path(tmp) / "labloom"), "LABLOOM_PROGRESS": "0",
               "PYTHONPATH": str(ROOT / "src")}
        subprocess.run([sys.executable, "-m", "labloom", "run", "flows.py:sweep"], cwd=work,
                       env=env, check=True, capture_output=True)
        if args.big:
            subprocess.run([sys.executable, "-m", "labloom", "run", "flows.py:big", "--param",
                            f"n={args.big}"], cwd=work, env=env, check=True, capture_output=True)
        import nbformat
        from nbformat.v4 import new_code_cell, new_notebook

        nb = new_notebook(cells=[new_code_cell("%load_ext labloom"),
                                 new_code_cell("%%tasks\n" + TASKS.replace("def train", "def _unused")),
                                 new_code_cell(FLOW + "\nrun = sweep.run()\nrun.widget()")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nbformat.write(nb, notebooks / "bench.ipynb")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=require_program("chromium"),
                                        args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url.format("lab") + "&reset")
            page.locator('.jp-SideBar [title="Flows (labloom)"]').click(timeout=90_000)
            if args.big:
                page.locator(".labloom-run", has_text="big").first.click(timeout=30_000)
                page.locator(".labloom-RunView g.labloom-node").first.wait_for(timeout=60_000)
                times = page.evaluate(BIG, [".labloom-RunView .labloom-experiments", args.big])
                print(f"Lab run tab, {args.big} rows: first rows {times['open']:.0f} ms "
                      f"({'a partial page' if times['partial'] else 'complete'}; the first REST "
                      f"page {times['request']:.0f} ms of it), all {args.big} rows "
                      f"{times['whole']:.0f} ms, a jump to the middle {times['jump']:.0f} ms, "
                      f"sorted by auc {times['sort']:.0f} ms")
                page.locator(".labloom-RunView .labloom-exp-close").click()
                page.locator(".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabCloseIcon").click()
            page.locator(".labloom-run", has_text="sweep").first.click(timeout=30_000)
            tab = page.locator(".labloom-RunView")
            tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
            report("Lab run tab (REST)", rounds(page, ".labloom-RunView button.labloom-experiments-toggle",
                                                ".labloom-RunView .labloom-experiments", args.rounds))

            page.goto(url.format("lab/tree/bench.ipynb") + "&reset")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            widget = page.locator(".jp-CodeCell .labloom-widget[data-state='Completed']")
            widget.wait_for(timeout=120_000)
            widget.locator("g.labloom-node[data-kind='map']").click()
            widget.locator("button.labloom-experiments-open").wait_for()
            report("cell widget (kernel)", rounds(page, ".labloom-widget button.labloom-experiments-open",
                                                  ".labloom-widget .labloom-experiments", args.rounds))
            browser.close()


if __name__ == "__main__":
    main()
