"""A run's widget output when its kernel shuts down (or restarts) mid-run: the run is ended at
exit (core/at_exit.py), and the output is refreshed with the bundle without the widget view
before the kernel is gone (widget/last_frames.py), as at any run's end. So a notebook saved
afterwards exports the summary, offline too (test_widget_export.py tells why). Before, the
refresh raced the kernel's exit and was lost in 4 of 21 shutdowns here. A kernel killed
outright (SIGKILL, out of memory) runs no exit hook: nothing can refresh its outputs. Real
kernel (jupyter_client), shut down as JupyterLab's "Restart Kernel" does.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

from kernel_helpers import kernel
from test_widget_export import RUN_MIME, WIDGET_VIEW

CELLS = [
    "%load_ext labloom",
    '''%%tasks
import threading

def slow_step(x):
    threading.Event().wait(120)  # still running when the kernel shuts down
    return x
''',
]
STARTED = '''import time
deadline = time.monotonic() + 60
while not any(t.state.value == "Running" for t in going.tasks):
    assert time.monotonic() < deadline, "the task never started"
    time.sleep(0.05)
'''


def display_id(messages: list[dict[str, Any]]) -> str:
    [shown] = [m for m in messages if m["msg_type"] == "display_data"
               and RUN_MIME in m["content"]["data"]]
    assert WIDGET_VIEW in shown["content"]["data"]  # the live widget, while the run goes on
    return str(shown["content"]["transient"]["display_id"])


def test_a_kernel_shut_down_mid_run_leaves_the_output_without_the_widget_view(
    tmp_path: Path,
) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        for cell in CELLS:
            k.ok(cell)
        shown = display_id(k.ok("%%flow slow --executor threads --background\n"
                                "late = slow_step(1)\n"))
        k.ok("going = _  # the FlowRun the --background cell returned\n" + STARTED)
        k.manager.request_shutdown(restart=True)
        updates, deadline = [], time.monotonic() + 60
        while not updates and time.monotonic() < deadline:
            try:
                message = k.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                if k.manager.is_alive():
                    continue
                break  # gone, and all it sent read
            if message["msg_type"] == "update_display_data":
                updates.append(message["content"])
        assert updates, "no refresh of the output before the kernel exited"
        [update] = updates
        assert update["transient"]["display_id"] == shown
        assert WIDGET_VIEW not in update["data"]
        assert "model_id" in update["data"][RUN_MIME]
        assert 'data-state="Cancelled"' in update["data"]["text/html"].split("</p>")[0]
