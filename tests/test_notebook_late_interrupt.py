"""An interrupt that lands once a cell's code has ended, while ipykernel flushes its output
before the reply (``execute_request``: ``sys.stdout.flush()`` waits for the IOPub thread), no
longer loses the reply: the cell ends, the kernel runs the next cell, and an interrupt of a
running cell still interrupts it (notebook/late_interrupts.py).

Before, ipykernel's dispatcher caught that KeyboardInterrupt ("KeyboardInterrupt caught in
kernel.") and never sent the ``execute_reply``: the cell stayed busy for ever, as an
interrupted Dask %%flow cell did under load (session 52's reproducer, caught in session 53)."""

from __future__ import annotations

from pathlib import Path

from kernel_helpers import error_text, kernel

# Run in the kernel: its IOPub thread is kept busy until the main thread waits on it in
# execute_request's flush, after the cell; then the kernel's process gets SIGINT, as the
# Interrupt button sends it. The window is made wide here; under load it is as wide.
LATE = """
import os, signal, sys, threading, time

def _in_the_reply_flush():
    frame = sys._current_frames().get(threading.main_thread().ident)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return "flush" in names and "execute_request" in names and "run_cell" not in names

def _interrupt_the_flush():
    deadline = time.monotonic() + 60
    while not _in_the_reply_flush() and time.monotonic() < deadline:
        time.sleep(0.01)
    _sent.append(_in_the_reply_flush())
    os.kill(os.getpid(), signal.SIGINT)

_sent = []
sys.stdout.pub_thread.schedule(_interrupt_the_flush)
"""


def test_an_interrupt_after_the_cells_code_ended_still_lets_it_reply(tmp_path: Path) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok("%load_ext labloom")
        status, messages = k.run(LATE, timeout=60)  # TimeoutError before: no reply, ever
        assert status == "ok", error_text(messages)
        k.ok("assert _sent == [True], _sent")  # it landed where it was meant to
        # A cell run by a cell ends: the outer one is still interrupted, not ignored.
        started = tmp_path / "started"
        cell = (f"import pathlib, time\nget_ipython().run_cell('x = 1')\n"
                f"pathlib.Path({str(started)!r}).touch()\ntime.sleep(60)")
        status, messages = k.run_interrupted(cell, when=started.exists, timeout=60)
        assert status == "error" and "KeyboardInterrupt" in error_text(messages), status
        started.unlink()
        cell = f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(60)"
        status, messages = k.run_interrupted(cell, when=started.exists, timeout=60)
        assert status == "error" and "KeyboardInterrupt" in error_text(messages), status
