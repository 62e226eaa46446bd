"""The Flows panel's delete of ticked runs whose PostgreSQL server goes away midway (the second
batch's COMMIT unanswered, the server away past the connection wait), in a real JupyterLab in
headless Chromium: the panel shows the 504's message, drops the rows of the runs the first
batch deleted (the answer lists them, docs/rest-api.md) and keeps the others ticked. Before,
every row stayed, the deleted ones too, until the server was back; those runs were named only
in the message, the first 20.

Run with ``pytest -m browser``, one browser test file at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom
from cut_runs import MANY
from lab_helpers import flows_folder, open_lab, run_row, shot
from pg_commit_cut import CommitCutter, cut_database

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]


@pytest.fixture
def cut_store(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[CommitCutter]:
    """Set up before ``lab`` (asked first), whose server takes this environment."""
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO deleted_runs ",)) as proxy:
        yield proxy
        proxy.down.clear()


def test_a_delete_cut_off_midway_drops_the_rows_of_the_runs_it_deleted(
    cut_store: CommitCutter, lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, MANY)
    made = subprocess.run([sys.executable, str(work / "flows.py")], text=True, cwd=work,
                          capture_output=True, env=cli_env(home), timeout=300)
    assert made.returncode == 0, made.stderr
    ids = [r["id"] for r in json.loads(
        labloom(home, "runs", "--json", "--limit", "100", cwd=work).stdout)]  # newest first
    assert len(ids) == 60
    try:
        panel, _alerts = open_lab(page, url)
        for run_id in ids:
            run_row(panel, run_id).locator(".labloom-run-pick").check()
        delete = panel.locator("button.labloom-delete")
        assert delete.text_content() == "Delete (60)"
        cut_store.armed.set()
        delete.click()
        page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
        panel.locator(".labloom-delete-note", has_text="may or may not have been made"
                      ).wait_for(timeout=60_000)
        assert cut_store.cut.is_set() and cut_store.down.is_set()
        # The first batch, in the order ticked: gone (before: their rows stayed).
        for run_id in ids[:50]:
            run_row(panel, run_id).wait_for(state="detached", timeout=20_000)
        for run_id in ids[50:]:  # may or may not be gone: kept, ticked, until the list tells
            assert run_row(panel, run_id).locator(".labloom-run-pick").is_checked()
        assert delete.text_content() == "Delete (10)"
        shot(page, "lab-delete-cut-off")
    except Exception:
        shot(page, "failed-lab-delete-cut")
        raise
