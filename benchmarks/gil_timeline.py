"""Where a run's wall time goes besides its instructions: the GIL's timeline of issue 19's
logging benchmark (``experiments_overhead.py``'s flow: 100,000 no-op children logging 3
metrics, or none, on ``ThreadExecutor(4)`` with the store on), read from uprobes on the
interpreter's own ``take_gil`` and ``drop_gil`` (Linux ``perf``, run as root).

The run's wall time is split into: the GIL held (by whom: what its threads ran, or their
being descheduled while holding it), the GIL free while a thread waited for it (a handoff:
the waiter's wake-up), and the GIL free with no thread wanting it (all blocked: the task
threads paced or idle, the store writer in SQLite or its disk). Per thread: how often it
took the GIL, how often it waited more than 1 ms for it (a holder made to drop it by the
switch interval), how long it waited and held it. ``fdatasync``: the calls (SQLite's
checkpoints) and their time. Each mode is the first run of a fresh interpreter, modes and
trees alternating (as ``experiments_overhead.py``); medians over ``--runs``.

    python3 benchmarks/gil_timeline.py --runs 3
    python3 benchmarks/gil_timeline.py --src /tmp/base/src --src src --runs 3 --pin
    python3 benchmarks/gil_timeline.py --switch-interval 0.001 --runs 2

The probes stay registered while this runs (every process of this interpreter's library
traps on them while ``perf record`` runs: keep it short on a shared machine); they are
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

from experiments_overhead import CHILD, SRC
from installed_bytecode import bytecode, installed_env

# Before the benchmark's child: its threads' names by id, and each run's span on the clock
# perf stamps its events with (CLOCK_MONOTONIC), written to stderr.
PREFIX = r"""
import json as _json, os as _os, sys as _sys, threading as _threading, time as _time
from labloom.core.flows import Flow as _Flow
if _os.environ.get("SWITCH_INTERVAL"):
    _sys.setswitchinterval(float(_os.environ["SWITCH_INTERVAL"]))
_names = {}
def _name_threads(stop=_threading.Event()):
    while not stop.wait(0.05):
        _names.update((t.native_id, t.name) for t in _threading.enumerate())
_threading.Thread(target=_name_threads, name="names", daemon=True).start()
_run = _Flow.run
def _timed_run(self, *args, **kwargs):
    began = _time.monotonic()
    try:
        return _run(self, *args, **kwargs)
    finally:
        _names.update((t.native_id, t.name) for t in _threading.enumerate())
        _sys.stderr.write(_json.dumps({"span": [began, _time.monotonic()], "names": _names}) + "\n")
_Flow.run = _timed_run
"""
PROBES = ("take_gil", "take_gil_ret=take_gil%return", "drop_gil")
EVENTS = ("{lib}:take_gil", "{lib}:take_gil_ret__return", "{lib}:drop_gil",
          "syscalls:sys_enter_fdatasync", "syscalls:sys_exit_fdatasync")


def library() -> Path:
    """Where ``take_gil`` is: libpython when the interpreter is linked to it, else itself."""
    name = sysconfig.get_config_var("INSTSONAME") or ""
    shared = Path(sysconfig.get_config_var("LIBDIR") or "") / name
    return shared if name.endswith(tuple(f".so{v}" for v in ("", ".1", ".1.0"))) and \
        shared.exists() else Path(sys.executable).resolve()


def group(name: str) -> str:
    """A thread's role: the task threads as one."""
    return "tasks" if name.startswith("labloom-task") else name.rsplit("-", 1)[0] \
        if name.startswith("labloom-events") else name


def timeline(lines: list[str], span: tuple[float, float], names: dict[str, str]) -> dict:
    """The GIL's and ``fdatasync``'s account of one run from ``perf script`` lines."""
    holder, since, free_from = None, span[0], None
    waiting: dict[int, float] = {}
    takes, slow, waited, held = Counter(), Counter(), Counter(), Counter()
    handoff = unwanted = syncing = 0.0
    handoffs = syncs = 0
    unwanted_by: Counter[str] = Counter()
    sync_from: dict[int, float] = {}
    for line in lines:
        tid_text, stamp, event = line.split()[:3]
        tid, t = int(tid_text), float(stamp.rstrip(":"))
        if not span[0] <= t <= span[1]:
            continue
        who = group(names.get(tid_text, "?"))
        if event.endswith(":take_gil:"):
            waiting[tid] = t
        elif event.endswith("take_gil_ret__return:"):
            wait = t - waiting.pop(tid, t)
            takes[who] += 1
            waited[who] += wait
            slow[who] += wait > 0.001
            if free_from is not None:
                if free_from[1]:
                    handoff += t - free_from[0]
                    handoffs += 1
                else:
                    unwanted += t - free_from[0]
                    unwanted_by[f"{free_from[2]} -> {who}"] += t - free_from[0]
            holder, since, free_from = tid, t, None
        elif event.endswith(":drop_gil:"):
            if holder == tid:
                held[who] += t - since
            holder, free_from = None, (t, bool(waiting), who)
        elif event.endswith("sys_enter_fdatasync:"):
            sync_from[tid] = t
        elif event.endswith("sys_exit_fdatasync:") and tid in sync_from:
            syncs += 1
            syncing += t - sync_from.pop(tid)
    return {"wall": span[1] - span[0], "held": sum(held.values()), "handoff": handoff,
            "handoffs": handoffs, "unwanted": unwanted, "fdatasync": syncs, "syncing": syncing,
            "unwanted_by": dict(unwanted_by), "threads": {
                who: [takes[who], slow[who], waited[who], held[who]] for who in takes}}


def one_run(tree: Path, mode: str, lib: str, pycache: str, pin: bool,
            switch_interval: float | None, n: int = 100_000) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = dict(installed_env(pycache), LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                   PYTHONPATH=str(tree))
        if switch_interval is not None:
            env["SWITCH_INTERVAL"] = str(switch_interval)
        data = Path(home) / "perf.data"
        command = [*(["taskset", "-c", "0"] if pin else []), "perf", "record", "-q",
                   "-k", "CLOCK_MONOTONIC", "-o", str(data),
                   *[arg for event in EVENTS for arg in ("-e", event.format(lib=lib))],
                   sys.executable, "-c", PREFIX + CHILD, str(n), mode]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        told = json.loads([line for line in out.stderr.splitlines() if '"span"' in line][-1])
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,time,event"],
                                check=True, capture_output=True, text=True).stdout
    return timeline(script.splitlines(), tuple(told["span"]), told["names"])


def report(mode: str, runs: list[dict]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"  {mode}: wall {med([r['wall'] for r in runs]):.2f} s; GIL held "
          f"{med([r['held'] for r in runs]):.2f} s; free, a thread waiting (handoffs) "
          f"{med([r['handoff'] for r in runs]):.2f} s over {med([r['handoffs'] for r in runs]):.0f}"
          f"; free, nobody waiting {med([r['unwanted'] for r in runs]):.2f} s; fdatasync "
          f"{med([r['fdatasync'] for r in runs]):.0f} calls, {med([r['syncing'] for r in runs]):.2f} s")
    print("    walls:", " ".join(f"{r['wall']:.2f}" for r in runs))
    keys = Counter()
    for r in runs:
        keys.update(r["unwanted_by"])
    print("    nobody waiting, after a drop by -> until a take by:", ", ".join(
        f"{k} {med([r['unwanted_by'].get(k, 0.0) for r in runs]):.2f}"
        for k, _ in keys.most_common(4)))
    for who in sorted({w for r in runs for w in r["threads"]}):
        rows = [r["threads"].get(who, [0, 0, 0.0, 0.0]) for r in runs]
        print(f"    {who:24s} takes {med([x[0] for x in rows]):7.0f}  waits > 1 ms "
              f"{med([x[1] for x in rows]):5.0f}  waited {med([x[2] for x in rows]):5.2f} s  "
              f"held {med([x[3] for x in rows]):5.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, action="append", help="a source tree (repeat)")
    parser.add_argument("--runs", type=int, default=3, help="fresh runs of each mode")
    parser.add_argument("--pin", action="store_true", help="taskset -c 0")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval first")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.src or [SRC]]
    lib_path = library()
    added = [subprocess.run(["perf", "probe", "-q", "-x", str(lib_path), "-a", probe],
                            capture_output=True, text=True).returncode == 0 for probe in PROBES]
    # perf names the probes' group after the library (``probe_libpython3``)
    lib = next(line.split(":")[0].strip() for line in subprocess.run(
        ["perf", "probe", "-l"], capture_output=True, text=True, check=True).stdout.splitlines()
        if ":take_gil " in line)
    try:
        pycache = bytecode(trees, lambda tree, folder: one_run(
            tree, "none", lib, folder, pin=False, switch_interval=None, n=100))
        runs: dict[tuple[Path, str], list[dict]] = {}
        for i in range(args.runs):
            for tree in trees[i % len(trees):] + trees[:i % len(trees)]:
                for mode in ("none", "metrics")[::1 if i % 2 == 0 else -1]:
                    runs.setdefault((tree, mode), []).append(one_run(
                        tree, mode, lib, pycache.name, args.pin, args.switch_interval))
        for tree in trees:
            print(f"--- {tree}" + (" (pinned)" if args.pin else "") + (
                f" switch interval {args.switch_interval}" if args.switch_interval else ""))
            for mode in ("none", "metrics"):
                report(mode, runs[(tree, mode)])
    finally:
        for probe, new in zip(PROBES, added, strict=True):
            if new:
                name = probe.split("=")[0].split("%")[0]
                suffix = "__return" if "%return" in probe else ""
                subprocess.run(["perf", "probe", "-q", "-d", f"{lib}:{name}{suffix}"],
                               capture_output=True)


if __name__ == "__main__":
    main()
