"""System programs some tests need (chromium, graphviz's dot, ...), said once.

On a machine without one, its tests skip with the install hint in pytest's summary. CI installs
them all (.ci/run) and sets LABLOOM_REQUIRE_SYSTEM=1, which turns those skips into failures, so
a missing program can never hide a test there.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL_HINTS = {
    "chromium": "apt-get install chromium",
    "dot": "apt-get install graphviz (or conda/brew install graphviz)",
}


def require_program(program: str) -> str:
    """The program's path; skip the calling test (fail under LABLOOM_REQUIRE_SYSTEM=1) without it."""
    path = shutil.which(program)
    if path:
        return path
    message = f"needs `{program}` on PATH: {INSTALL_HINTS.get(program, 'install it')}"
    if os.environ.get("LABLOOM_REQUIRE_SYSTEM") == "1":
        pytest.fail(f"{message} (LABLOOM_REQUIRE_SYSTEM=1: CI must run every test)", pytrace=False)
    pytest.skip(message)
