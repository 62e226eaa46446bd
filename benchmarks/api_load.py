"""The Lab REST API under load: run tabs and the Flows panel polling while a big flow runs.

Starts a real Jupyter server with labloom's server extension in a subprocess, then runs a flow
of N no-op task runs (``one.map(range(N))`` on ``ThreadExecutor(4)``) in another process writing
to the same SQLite store, alternately alone and with pollers: ``--clients`` threads that each
poll the run as a run tab does (``GET runs/{id}`` once a second after each answer: with
``?tasks=0``, or, where the server hands out a cursor, ``?since=<cursor>&lines=0`` after the
first answer) and ``--panels`` threads polling the Flows panel's ``GET runs?limit=100``. The
pollers find the run as a user does, in the runs list. Printed: the flow's time alone and with
polling (each round runs both, back to back: the median of the rounds' ratios is the paired
measure), the CPU time of the server and of the pollers themselves during each flow, p50/p99/max of each request's latency while
the flow ran (a tab's first poll apart: it may build the run's graph), the poll answers' sizes,
and after the run the size and time of a full ``GET runs/{id}`` (the default, task runs
included) and of the run tab's first ``?tasks=0``.

    python3 benchmarks/api_load.py [--tasks 100000] [--clients 10] [--panels 1] [--rounds 2]

The flows share one store (each round adds N task runs to it); the two modes alternate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from labloom import ThreadExecutor, flow, task

@task
def one(x):
    return x

@flow
def wide(n):
    one.map(range(n))

n = int(sys.argv[1])
started = time.perf_counter()
run = wide.run(n=n, executor=ThreadExecutor(4))
elapsed = time.perf_counter() - started
assert run.state.value == "Completed", (run.state, run.message)
print(json.dumps({"id": run.id, "seconds": elapsed}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, env: dict[str, str], log_level: str = "INFO") -> None:
        self.token, port = secrets.token_hex(16), free_port()
        self.log = (tmp / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
             f"--port={port}", f"--IdentityProvider.token={self.token}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.jpserver_extensions={'labloom': True}",
             f"--log-level={log_level}"],  # DEBUG: each request's time, in the log
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp,
        )
        self.root = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.root}api/status?token={self.token}", timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the Jupyter server did not start") from None
                time.sleep(0.3)

    def get(self, path: str, timeout: float = 300) -> tuple[float, bytes]:
        request = urllib.request.Request(
            f"{self.root}labloom/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
        return time.perf_counter() - started, body

    def cpu(self) -> float:
        """The server process's CPU time so far (user + system), in seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Pollers:
    """Run tabs and panels polling while ``running`` is set; latencies in seconds."""

    def __init__(self, server: Server, clients: int, panels: int) -> None:
        self.server = server
        self.running = threading.Event()
        self.done = threading.Event()
        self.run_id: str | None = None
        self.found = threading.Event()
        self.detail: list[float] = []
        self.first: list[float] = []  # each tab's first poll: the server may build the graph
        self.sizes: list[int] = []
        self.listing: list[float] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._tab, daemon=True) for _ in range(clients)]
        self.threads += [threading.Thread(target=self._panel, daemon=True) for _ in range(panels)]

    def start(self) -> None:
        self.running.set()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.running.is_set():
            for thread in self.threads:
                thread.join(timeout=600)

    def _panel(self) -> None:
        while not self.done.is_set():
            try:
                took, body = self.server.get("runs?limit=100")
            except OSError as exc:
                self.errors.append(f"runs: {exc}")
                self.done.wait(1.0)
                continue
            self.listing.append(took)
            if self.run_id is None:
                running = [r for r in json.loads(body)["runs"] if r["state"] == "Running"]
                if running:
                    self.run_id = running[0]["id"]
                    self.found.set()
            self.done.wait(1.0)

    def _tab(self) -> None:
        # A user opens the run from the panel: wait until the panel shows it.
        while not self.found.wait(0.1):
            if self.done.is_set():
                return
        cursor: str | None = None
        polled = False
        while not self.done.is_set():
            query = "tasks=0" if cursor is None else "since=" + urllib.parse.quote(cursor) + "&lines=0"
            try:
                took, body = self.server.get(f"runs/{self.run_id}?{query}")
            except OSError as exc:
                self.errors.append(f"runs/id: {exc}")
                self.done.wait(1.0)
                continue
            (self.detail if polled else self.first).append(took)
            polled = True
            self.sizes.append(len(body))
            cursor = json.loads(body).get("cursor")  # None from a server without cursors
            self.done.wait(1.0)


def run_flow(env: dict[str, str], tasks: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tasks)], env=env, check=True,
                         capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _own_cpu() -> float:
    """This process's CPU time (the pollers' threads; not the flow's child process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--panels", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labloom-api-load-"))
    env = {**os.environ, "LABLOOM_HOME": str(tmp / "home"), "LABLOOM_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp / "c"), "JUPYTER_DATA_DIR": str(tmp / "d"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "r")}
    server = Server(tmp, env)
    rounds: list[dict[str, float]] = []
    first: list[float] = []
    detail: list[float] = []
    listing: list[float] = []
    sizes: list[int] = []
    errors = 0
    last_id = ""
    try:
        for round_no in range(args.rounds):
            times: dict[str, float] = {}
            for mode in ("alone", "polled") if round_no % 2 == 0 else ("polled", "alone"):
                pollers = Pollers(server, args.clients, args.panels)
                cpu, mine = server.cpu(), _own_cpu()
                if mode == "polled":
                    pollers.start()
                result = run_flow(env, args.tasks)
                pollers.stop()
                times[mode] = result["seconds"]
                times[f"{mode} cpu"] = server.cpu() - cpu
                times[f"{mode} clients"] = _own_cpu() - mine
                last_id = result["id"]
                first += pollers.first
                detail += pollers.detail
                listing += pollers.listing
                sizes += pollers.sizes
                errors += len(pollers.errors)
            rounds.append(times)
            print(f"round {round_no + 1}: alone {times['alone']:.2f}s, polled "
                  f"{times['polled']:.2f}s, ratio {times['polled'] / times['alone']:.3f}; "
                  f"CPU while polled: server {times['polled cpu']:.1f}s, clients "
                  f"{times['polled clients']:.1f}s (alone: server {times['alone cpu']:.1f}s)",
                  flush=True)
        full_time, full = server.get(f"runs/{last_id}")
        tab_time, tab = server.get(f"runs/{last_id}?tasks=0")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the store holds every round's task runs

    alone = statistics.median(r["alone"] for r in rounds)
    polled = statistics.median(r["polled"] for r in rounds)
    ratios = [r["polled"] / r["alone"] for r in rounds]
    print(f"\n{args.tasks:,} no-op task runs on ThreadExecutor(4); {args.clients} run tabs, "
          f"{args.panels} panel(s) polling once a second; {args.rounds} round(s)")
    print(f"flow alone (median)        {alone:8.2f} s")
    print(f"flow while polled (median) {polled:8.2f} s")
    print(f"median of the rounds' ratios {statistics.median(ratios):.3f} "
          f"({', '.join(f'{r:.3f}' for r in ratios)}); median polled / median alone "
          f"{polled / alone:.3f}")
    for label, values in (("GET runs/{id}, a tab's first poll", first),
                          ("GET runs/{id}, the polls after", detail),
                          ("GET runs?limit=100 (panel)", listing)):
        if values:
            print(f"{label:<34} n={len(values):<5} p50 {quantile(values, 0.5):7.3f} s  "
                  f"p90 {quantile(values, 0.9):7.3f} s  p99 {quantile(values, 0.99):7.3f} s  "
                  f"max {max(values):7.3f} s")
    if sizes:
        print(f"run tab's poll answer: median {statistics.median(sizes) / 1e3:.1f} kB, "
              f"max {max(sizes) / 1e3:.1f} kB")
    if errors:
        print(f"{errors} requests failed")
    print(f"after the run: full GET runs/{{id}} {len(full) / 1e6:.2f} MB in {full_time:.2f} s; "
          f"?tasks=0 {len(tab) / 1e3:.1f} kB in {tab_time:.2f} s")

if __name__ == "__main__":
    main()
