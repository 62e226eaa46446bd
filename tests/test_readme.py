"""The README's Python example runs as written, in a fresh interpreter (as a script file)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from store_helpers import env_for

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_plain_python_example_runs_as_written(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## In plain Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the section's example is gone"
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=240, env=env_for(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    best, state = done.stdout.splitlines()
    assert float(best) == max(sum(0.1 * i * w for i in range(100)) / 100 for w in range(10))
    assert state == "Completed 12"  # load_data, 10 evaluate, best
