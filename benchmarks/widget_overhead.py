"""What the live DAG costs: a 2,000-task flow in a real kernel, with the widget and without.

    python benchmarks/widget_overhead.py [--tasks 2000] [--repeat 3]

nbclient drives a kernel (labloom from this checkout) through the same notebook twice per
repeat, once with ``%%flow ... --no-widget``, once with the widget; each flow run times itself
inside the kernel. Prints the medians and the ratio. The widget's traffic is bounded by graph
nodes, so its cost should stay close to flat as tasks grow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def notebook(tasks: int, repeat: int) -> nbformat.NotebookNode:
    cells = [
        "%load_ext labloom\nimport time, json\ntimes = {'widget': [], 'no-widget': []}",
        "%%tasks\ndef inc(x):\n    return x + 1\n\ndef total(xs):\n    return sum(xs)",
        f"items = list(range({tasks // 2}))",
    ]
    for _ in range(repeat):
        for mode, flag in (("no-widget", "--no-widget"), ("widget", "")):
            cells.append("t0 = time.perf_counter()")
            # Two maps of tasks/2 children each, chained child to child: `tasks` task runs.
            cells.append(
                f"%%flow bench -p items {flag}\nfirst = inc.map(items)\nsecond = inc.map(first)"
            )
            cells.append(f"times[{mode!r}].append(time.perf_counter() - t0)")
    cells.append("print(json.dumps(times))")
    return new_notebook(cells=[new_code_cell(c) for c in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LABLOOM_HOME"] = tmp
        nb = notebook(args.tasks, args.repeat)
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    out = nb.cells[-1].outputs[0]["text"]
    times = json.loads(out)
    plain = statistics.median(times["no-widget"])
    shown = statistics.median(times["widget"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.tasks} task runs")
    print(f"--no-widget  median {plain:.3f}s  runs {[round(t, 3) for t in times['no-widget']]}")
    print(f"widget       median {shown:.3f}s  runs {[round(t, 3) for t in times['widget']]}")
    print(f"ratio widget / no-widget: {shown / plain:.2f}  (difference {shown - plain:+.3f}s)")


if __name__ == "__main__":
    main()
