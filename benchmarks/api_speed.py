"""The Flows panel's REST API on a big store: 1,000 runs, and a task run with 10,000 log lines.

Fills a fresh LABLOOM_HOME with real runs (1,000 small flows, then one flow whose task prints
10,000 lines, and one mapping a task over 10,000 elements), starts a real Jupyter server with labloom's server extension in a subprocess,
and times what the panel and the run view ask: the first request to a fresh server, then warm
rounds. "server" is tornado's own request time from the server's log (handler start to finish,
the store read on the thread pool included); "client" adds HTTP on loopback.

    python benchmarks/api_speed.py [--runs 1000] [--lines 10000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
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

SERVER_TIME = re.compile(r"200 GET (\S+) .*? ([0-9.]+)ms")


@task
def step(x: int) -> int:
    return x + 1


@flow
def small(n: int = 2) -> list[int]:
    return step.map(range(n))  # type: ignore[return-value]


@flow
def wide(n: int = 10_000) -> list[int]:
    return step.map(range(n))  # type: ignore[return-value]


@task
def chatty(lines: int) -> int:
    for i in range(lines):
        print(f"line {i}: the quick brown fox jumps over the lazy dog")
    return lines


@flow
def talkative(lines: int = 10_000) -> int:
    return chatty(lines)  # type: ignore[return-value]


def fill(runs: int, lines: int) -> tuple[str, str]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the chatty task's echo
        for _ in range(runs):
            small.run(executor=LocalExecutor())
        chatty_run = talkative.run(lines=lines, executor=LocalExecutor())
        wide_run = wide.run(n=10_000, executor=LocalExecutor())
    from labloom.store import open_store

    with open_store() as store:
        stored = len(store.list_runs(limit=None))
    print(f"the store holds {stored} runs (filled in {time.perf_counter() - started:.1f} s)")
    return chatty_run.id, wide_run.id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labloom-api-bench-"))
    os.environ.update(LABLOOM_HOME=str(tmp / "home"), LABLOOM_PROGRESS="0",
                      LABLOOM_LOG_LINES=str(args.lines * 2))
    chatty_id, wide_id = fill(args.runs, args.lines)

    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "JUPYTER_CONFIG_DIR": str(tmp / "c"),
           "JUPYTER_DATA_DIR": str(tmp / "d"), "JUPYTER_RUNTIME_DIR": str(tmp / "r")}
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
             f"--port={port}", f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1",
             "--ServerApp.jpserver_extensions={'labloom': True}", "--log-level=DEBUG"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )
    base = f"http://127.0.0.1:{port}/labloom/api/"
    headers = {"Authorization": f"token {token}"}

    def fetch(path: str) -> tuple[float, dict[str, object]]:
        request = urllib.request.Request(base + path, headers=headers)
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return (time.perf_counter() - started) * 1000, json.loads(body)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                       timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Jupyter server did not start:\n"
                                       + log_path.read_text()[-3000:]) from None
                time.sleep(0.3)
        cursor = 0
        while True:  # everything the chatty task printed, page by page, as the run view does
            _, page = fetch(f"runs/{chatty_id}/logs?task=chatty&after={cursor}&limit=5000")
            cursor = int(page["next"])  # type: ignore[call-overload]
            if not page["more"]:
                break
        asks = {
            "GET runs (first page of 50)": "runs?limit=50",
            "GET runs (a page of 500)": "runs?limit=500",
            "GET runs/{id} (tasks=0)": f"runs/{chatty_id}?tasks=0",
            "GET runs/{id} (tasks=0), a map of 10,000": f"runs/{wide_id}?tasks=0",
            "GET runs/{id}/logs of one of its children": f"runs/{wide_id}/logs?task=step[5000]",
            f"GET runs/{{id}}/logs ({args.lines} lines, 2 pages)": None,
            "GET runs/{id}/logs (follow: nothing new)":
                f"runs/{chatty_id}/logs?task=chatty&after={cursor}",
        }
        print(f"{'request':<44} {'first':>8} {'median':>8} {'server median':>14}")
        for label, path in asks.items():
            client: list[float] = []
            for _ in range(args.rounds + 1):
                if path is None:
                    a, page = fetch(f"runs/{chatty_id}/logs?task=chatty&limit=5000")
                    b, _ = fetch(f"runs/{chatty_id}/logs?task=chatty&limit=5000"
                                 f"&after={page['next']}")
                    client.append(a + b)
                else:
                    client.append(fetch(path)[0])
            server_ms = _server_times(log_path, path or f"runs/{chatty_id}/logs?task=chatty&limit=5000",
                                      (args.rounds + 1) * (2 if path is None else 1))
            if path is None:  # two requests per round
                server_ms = [a + b for a, b in zip(server_ms[::2], server_ms[1::2], strict=False)]
            print(f"{label:<44} {client[0]:7.1f}ms {statistics.median(client[1:]):7.1f}ms "
                  f"{statistics.median(server_ms[1:]):12.1f}ms")
    finally:
        server.terminate()
        server.wait(timeout=20)


def _server_times(log_path: Path, path: str, count: int, timeout: float = 30) -> list[float]:
    """Tornado's request times, in order, of the requests whose URL starts with ``path``: at
    least ``count`` of them (the server logs a request just after answering it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            float(m.group(2)) for line in log_path.read_text().splitlines()
            if (m := SERVER_TIME.search(line)) and m.group(1).startswith(f"/labloom/api/{path}")
        ]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server logged {len(found)} of the {count} requests for "
                               f"{path} within {timeout:.0f} s: see {log_path}")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
