"""A real Jupyter kernel for a test (jupyter_client), with every folder in tmp, stopped after."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store_helpers import env_for

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Kernel:
    def __init__(self, client: Any, manager: Any = None) -> None:
        self.client = client
        self.manager = manager
        self.count = 0  # the last cell's execution count: In[count]

    def run_interrupted(
        self, code: str, when: Callable[[], bool], timeout: float = 60
    ) -> tuple[str, list[dict[str, Any]]]:
        """Run a cell and interrupt the kernel once ``when()`` holds, as JupyterLab's Interrupt
        button does: SIGINT to the kernel's whole process group (its subprocesses too)."""

        def interrupt() -> None:
            deadline = time.monotonic() + timeout
            while not when():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            self.manager.interrupt_kernel()

        interrupter = threading.Thread(target=interrupt, daemon=True)
        interrupter.start()
        try:
            return self.run(code, timeout)
        finally:
            interrupter.join(timeout)

    def run(self, code: str, timeout: float = 60) -> tuple[str, list[dict[str, Any]]]:
        """Run a cell: its status ("ok" or "error") and the iopub messages it produced."""
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(code, timeout=timeout,
                                                output_hook=messages.append)
        self.count = reply["content"]["execution_count"]
        return reply["content"]["status"], messages

    def ok(self, code: str, timeout: float = 60) -> list[dict[str, Any]]:
        status, messages = self.run(code, timeout)
        assert status == "ok", error_text(messages)
        return messages


def error_text(messages: list[dict[str, Any]]) -> str:
    """The traceback a notebook would show, without colours."""
    return "\n".join(
        _ANSI.sub("", line)
        for m in messages if m["msg_type"] == "error" for line in m["content"]["traceback"]
    )


@contextmanager
def kernel(tmp_path: Path, home: Path, capture_fds: bool = False) -> Iterator[Kernel]:
    """A python3 kernel of this interpreter, labloom from this checkout, state in ``home``.
    Shut down politely at the end, as JupyterLab's "Shut Down Kernel" does.

    ``capture_fds``: like a kernel that JupyterLab starts, forward what is written to its file
    descriptors 1 and 2 (by its subprocesses too, such as a LocalCluster's workers) to the
    cell. ipykernel does not under pytest (it sees PYTEST_CURRENT_TEST)."""
    from jupyter_client.manager import KernelManager

    env = env_for(home)
    if capture_fds:
        env.pop("PYTEST_CURRENT_TEST", None)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(tmp_path / var.lower())
    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv[0] = sys.executable  # whatever `python` is on PATH
    manager.start_kernel(env=env)
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        yield Kernel(client, manager)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
