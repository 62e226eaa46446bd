"""The ipykernel internals behind Cancel-while-a-cell-runs (``notebook/ipykernel_internals.py``),
against the installed ipykernel in a real kernel: the installed release takes the subshell
path, a subshell starts; outside a kernel the plain fallback (no routing) holds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labloom.notebook import ipykernel_internals
from labloom.notebook.comms import route_to_subshell, widget_subshell


@pytest.fixture
def kernel(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Any]:
    from jupyter_client.manager import start_new_kernel

    env = dict(subprocess_env, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=os.getcwd())
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client: Any, code: str) -> str:
    out: list[str] = []
    reply = client.execute_interactive(
        code, timeout=60, output_hook=lambda msg: out.append(msg["content"].get("text", ""))
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def test_a_subshell_starts_in_the_installed_ipykernel(kernel: Any) -> None:
    text = _run(kernel, (
        "from labloom.notebook.comms import widget_subshell\n"
        "print(repr(widget_subshell(get_ipython().kernel)))"
    ))
    subshell = text.strip().strip("'")
    assert subshell not in ("", "None"), text


def test_without_a_kernel_nothing_is_routed() -> None:
    class Widget:
        comm = None

    assert route_to_subshell(Widget()) is False
    assert widget_subshell(object()) is None


def test_the_installed_ipykernel_takes_the_subshell_path() -> None:
    # An ipykernel that moves these internals fails here, by name (the buttons would then act
    # only once the cell returns).
    assert ipykernel_internals.in_use() == ipykernel_internals.SUBSHELLS


def test_a_kernel_or_comm_without_subshells_takes_the_fallback() -> None:
    class OldKernel:  # ipykernel 6 and plain IPython: no subshell support
        pass

    class OldComm:
        pass

    assert ipykernel_internals.start_subshell(OldKernel(), timeout=1) is None
    assert not ipykernel_internals.can_route(OldComm())
    assert not ipykernel_internals.can_route(None)
