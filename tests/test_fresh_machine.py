"""A fresh machine: tests that need a system program skip with its install hint, CI fails them.

Also: the lint and type-check tools are pinned, so a new release cannot break the suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS_DOT = "tests/test_flow_visualize.py::test_visualize_draws_every_node_and_runs_nothing"


def pytest_without_programs(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one test that needs `dot` with a PATH that holds no program at all."""
    child_env = {k: v for k, v in os.environ.items() if k != "LABLOOM_REQUIRE_SYSTEM"}
    child_env.update(PATH=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         NEEDS_DOT],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120,
    )


def test_a_missing_program_skips_with_its_install_hint(tmp_path: Path) -> None:
    out = pytest_without_programs(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout
    assert "needs `dot` on PATH: apt-get install graphviz" in out.stdout  # in the summary


def test_ci_turns_the_skip_into_a_failure(tmp_path: Path) -> None:
    out = pytest_without_programs(tmp_path, LABLOOM_REQUIRE_SYSTEM="1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "LABLOOM_REQUIRE_SYSTEM=1" in out.stdout and "skipped" not in out.stdout


def test_ci_installs_the_programs_and_requires_them() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export LABLOOM_REQUIRE_SYSTEM=1" in ci
    assert re.search(r"apt-get install .*chromium.*graphviz", ci)
    # The way most users install: the README's commands inside a fresh virtual environment.
    assert re.search(r"python3 -m venv (\S+)\n(#.*\n)*\. \1/bin/activate\n", ci)


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_lint_and_type_tools_are_pinned_exactly(tool: str) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"{tool}==\d+(\.\d+)+"', pyproject), f"pin {tool} to the tested version"
