"""ipykernel's private internals that labloom uses, in one place, each with a plain fallback:
no subshell, so a widget's buttons act once the running cell returns. Nothing else in labloom
touches a private name of ipykernel or comm. ``in_use()`` names the path the installed
ipykernel takes; ``tests/test_kernel_subshells.py`` checks it and the fallback.

- ``start_subshell``: ipykernel 7 runs subshells (``kernel._supports_kernel_subshells``). A
  client asks for one with a ``create_subshell_request`` on the control channel; from inside
  the kernel labloom calls what that request calls, ``SubshellManager._create_subshell()``, on
  the shell channel's event loop (``manager._shell_channel_io_loop``), where the manager
  creates subshells.
- ``route_comm``: ipykernel's ``Comm._reply_subshell_for(data, default)`` says which subshell
  receives a comm's messages; labloom replaces it on its own widgets' comms only.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("labloom")

SUBSHELLS = "SubshellManager._create_subshell + Comm._reply_subshell_for"
NO_SUBSHELLS = "no subshells"


def in_use() -> str:
    """Which way the installed ipykernel gets widget messages off the main shell."""
    try:
        from ipykernel.comm.comm import Comm
        from ipykernel.subshell_manager import SubshellManager
    except ImportError:
        return NO_SUBSHELLS
    if hasattr(SubshellManager, "_create_subshell") and hasattr(Comm, "_reply_subshell_for"):
        return SUBSHELLS
    return NO_SUBSHELLS


def start_subshell(kernel: Any, timeout: float) -> str | None:
    """A new subshell of ``kernel``: its id, or None where the kernel cannot start one."""
    if not getattr(kernel, "_supports_kernel_subshells", False):
        return None
    try:
        manager = kernel.shell_channel_thread.manager
        loop = manager._shell_channel_io_loop
        create_subshell = manager._create_subshell
    except AttributeError:
        return None
    made: list[str] = []
    done = threading.Event()

    def create() -> None:
        # The manager creates subshells only on the shell channel thread.
        try:
            made.append(create_subshell())
        except Exception:
            log.exception("[labloom] could not start a subshell for widget messages")
        finally:
            done.set()

    loop.add_callback(create)
    if not done.wait(timeout) or not made:
        return None
    return made[0]


def can_route(comm: Any) -> bool:
    """Whether ``comm`` can be told which subshell receives its messages."""
    return comm is not None and hasattr(comm, "_reply_subshell_for")


def route_comm(comm: Any, subshell: str) -> None:
    """Send the front end's messages for ``comm`` to ``subshell`` (``can_route`` said yes)."""

    def route(_data: Any, _default: Any) -> str:
        return subshell

    comm._reply_subshell_for = route
