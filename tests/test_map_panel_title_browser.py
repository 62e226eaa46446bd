"""In a real JupyterLab (headless Chromium): a map node that ended with some of its children
failed, under allow_failure, in a run that Completed. Its panel's title said "train · Failed"
beside the node's "4/4 · 1 failed"; it now counts them as the node does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom
from lab_helpers import flows_folder, open_lab, open_run, stored_runs

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

FLOWS = '''
from labloom import allow_failure, flow, task

@task
def train(n):
    if n == 2:
        raise ValueError("diverged")
    return n

@task
def pick(results):
    return max(r for r in results if isinstance(r, int))

@flow(executor="local")
def sweep_part():
    return pick(allow_failure(train.map([0, 1, 2, 3])))
'''


def test_a_partly_failed_map_s_panel_title_counts_its_failures(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    done = labloom(home, "run", "flows.py:sweep_part", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    [run] = stored_runs(home, "sweep_part")
    panel, alerts = open_lab(page, url)
    view = open_run(page, panel, run.id)
    node = view.locator("g.labloom-node[data-kind='map']")
    node.locator(".labloom-node-sub", has_text="4/4 · 1 failed").wait_for(timeout=30_000)
    node.click()
    title = view.locator(".labloom-panel-title")
    title.wait_for(timeout=20_000)
    assert title.inner_text() == "train · 1 of 4 failed"
    assert view.locator(".labloom-RunView-facts [data-fact='state']").inner_text() == "Completed"
    assert alerts == []
