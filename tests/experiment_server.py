"""What the tests of the experiments' REST routes share (test_experiments_store, _outside,
_surfaces, _odd_text): Jupyter with labloom behind its auth, rows read as lists whether or not
pandas is installed here, and an answer or a refusal of the API. A test module imports the
fixtures by name, which is where pytest finds them."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError


@pytest.fixture(autouse=True)
def rows_as_lists(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests read rows as the list of dicts labloom gives without pandas (an optional
    dependency), whether or not it is installed here; ``..._with_pandas`` tests get it."""
    if "with_pandas" not in request.node.name:
        monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


async def get(jp_fetch: Any, *path: str, **params: Any) -> Any:
    """The JSON answer of ``GET labloom/api/<path>?<params>``, a 200."""
    response = await jp_fetch("labloom", "api", *path, params=params or None)
    assert response.code == 200
    return json.loads(response.body)


async def refused(jp_fetch: Any, *path: str, **params: Any) -> tuple[int, str]:
    """The status and message of ``GET labloom/api/<path>?<params>``, which must fail."""
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", *path, params=params or None)
    assert caught.value.response is not None
    return caught.value.code, json.loads(caught.value.response.body)["message"]
