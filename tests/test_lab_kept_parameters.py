"""In a real JupyterLab (headless Chromium): a run whose big parameter was kept as a summary
shows the summary in its tab, and the tab's Retry says at once why the run cannot be replayed
(before: "Retry started", then a `labloom retry` that failed in a log nobody reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab_helpers import flows_folder, open_lab, open_run, start_run, stored_runs, wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

FLOWS = '''
from labloom import flow, task

@task
def admit(n):
    raise RuntimeError("the ward's system is down")

@flow(executor="local")
def ward(ids=list(range(200_000))):
    admit(len(ids))
'''


def test_the_retry_of_a_run_whose_parameter_was_summarised_says_why(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, alerts = open_lab(page, url)
    proc = start_run(home, work, "ward")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # `admit` failed
    run = wait_for_run(home, "ward")
    view = open_run(page, panel, run.id)
    parameters = view.locator('[data-fact="parameters"]')
    parameters.filter(has_text='"__len__":200000').wait_for(timeout=30_000)
    assert "199999" not in parameters.inner_text()

    view.locator("button.labloom-retry").click()
    notice = view.locator(".labloom-RunView-notice", has_text="parameter ids was kept as a summary")
    notice.wait_for(timeout=20_000)
    assert "LABLOOM_PARAMETER_BYTES" in notice.inner_text()
    assert notice.get_attribute("data-error") == "true"
    assert len(stored_runs(home, "ward")) == 1 and alerts == []
