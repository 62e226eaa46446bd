"""A bad store setting (store/settings.py) in the Jupyter server's environment: the panel's
requests answer 500 with the line naming the variable, the value and the fix, not a
traceback; mended, they answer again without a restart. Before session 55 such a value fell
back to its default in silence; once it raised as the store opened, the API answered
Jupyter's "Unhandled error" with the traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


async def test_a_bad_store_setting_answers_500_naming_the_fix(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # A store this process has not opened yet: its settings are read as it opens.
    monkeypatch.setenv("LABLOOM_DATABASE_URL", f"sqlite:///{tmp_path / 'lab.db'}")
    monkeypatch.setenv("LABLOOM_STORE_BACKLOG", "lots")
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("labloom", "api", "runs")
    assert raised.value.code == 500 and raised.value.response is not None
    answer = json.loads(raised.value.response.body)
    assert answer["message"] == (
        "[labloom] LABLOOM_STORE_BACKLOG must be a whole number >= 1 (events that may wait in "
        "memory while the store cannot be written), got 'lots': set it to one, or unset it for "
        "the default (100000)"), answer
    assert "traceback" not in answer
    monkeypatch.setenv("LABLOOM_STORE_BACKLOG", "1000")  # mended: read again as it opens
    response = await jp_fetch("labloom", "api", "runs")
    assert response.code == 200 and json.loads(response.body)["runs"] == []
