"""The JavaScript unit tests of the extension's view models (js/src/__tests__, jest), run from
pytest so that CI runs them with everything else. Without Node.js or js/node_modules they skip
with the install hint (fail under LABLOOM_REQUIRE_SYSTEM=1, as CI sets)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from system_programs import require_program, require_system

JS = Path(__file__).resolve().parents[1] / "js"


def test_view_models_pass_their_jest_tests() -> None:
    require_program("node")
    jlpm = require_program("jlpm")
    require_system(None if (JS / "node_modules" / ".bin" / "jest").exists() else
                   "needs js/node_modules: run `jlpm --cwd js install`")
    done = subprocess.run([jlpm, "test", "--ci"], cwd=JS, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stderr.split("Tests:")[-1], done.stderr
