"""The real `labloom` command in a process of its own, held when it first calls a chosen
function of labloom's until the test lets it go: what another process does meanwhile (a
`labloom delete` of the run it looked up) lands between two of its steps, as in a race, with
nothing of labloom's replaced. A profile hook of the main thread sees the call; the process
makes ``<gate>.held`` and polls for ``gate``."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from cli_helpers import cli_env, stop, wait_for

HOLDER = """
import os, runpy, sys, time

module, function, gate = sys.argv[1:4]
held = False

def hook(frame, event, arg):
    global held
    code = frame.f_code
    if (event == "call" and not held and code.co_name == function
            and code.co_filename.replace(os.sep, "/").endswith(module)):
        held = True
        open(gate + ".held", "w").close()
        deadline = time.monotonic() + 120  # the test's guard: never held for good
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)

sys.setprofile(hook)
sys.argv = ["labloom", *sys.argv[4:]]
runpy.run_module("labloom", run_name="__main__", alter_sys=True)
"""


@contextlib.contextmanager
def held_at(home: Path, module: str, function: str,
            *args: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`labloom *args` over ``home``, held at its first call of ``function`` of ``module``
    (a path under src/labloom, as ``store/cancel.py``) once the block starts; the block makes
    the gate it yields to let it go. Killed after the block if it still runs."""
    gate = home / f"gate-{function}"
    script = home / "held_cli.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), module, function, str(gate), *args],
                            cwd=home, env=cli_env(home), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        held = Path(f"{gate}.held")
        wait_for(lambda: held.exists() or proc.poll() is not None, 60, f"the call of {function}")
        assert held.exists(), proc.communicate()
        yield proc, gate
    finally:
        stop(proc)
