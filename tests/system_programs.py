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
    "node": "install Node.js 18 or later (https://nodejs.org, or apt-get install nodejs)",
    "jlpm": "pip install jupyterlab (it ships jlpm)",
}


def require_program(program: str) -> str:
    """The program's path; skip the calling test (fail under LABLOOM_REQUIRE_SYSTEM=1) without it."""
    path = shutil.which(program)
    if path:
        return path
    require_system(f"needs `{program}` on PATH: {INSTALL_HINTS.get(program, 'install it')}")
    raise AssertionError("unreachable")  # require_system skipped or failed


def require_system(why_missing: str | None) -> None:
    """Nothing when ``why_missing`` is None; else skip with it as the install hint (fail under
    LABLOOM_REQUIRE_SYSTEM=1). For needs that are more than a program on PATH (a PostgreSQL
    server and its Python driver: ``pg_server.missing``)."""
    if why_missing is None:
        return
    if os.environ.get("LABLOOM_REQUIRE_SYSTEM") == "1":
        pytest.fail(f"{why_missing} (LABLOOM_REQUIRE_SYSTEM=1: CI must run every test)",
                    pytrace=False)
    pytest.skip(why_missing)
