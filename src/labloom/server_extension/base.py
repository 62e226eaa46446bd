"""What every labloom handler shares: auth resource, JSON replies, the store thread pool."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..core.errors import LabloomError, StoreChangeUnknownError, StoreUnavailableError
from ..store.db import database_url, is_transient, redact, short_error
from ..store.since_text import since_of
from . import SETTINGS_KEY
from .queries import StoreAccess

T = TypeVar("T")


class ErrorAnswer(web.HTTPError):
    """An error answer whose JSON carries ``fields`` beside its ``message`` (a delete cut off
    midway: the runs it deleted before, docs/rest-api.md)."""

    def __init__(self, status: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(status, message)
        self.fields = fields or {}


class LabloomHandler(APIHandler):
    # The authorizer sees ("read" | "write", "labloom"): a deployment can grant the panel
    # read-only access by refusing "write" on this resource.
    auth_resource = "labloom"

    @property
    def access(self) -> StoreAccess:
        return self.settings[SETTINGS_KEY]  # type: ignore[no-any-return]

    # The pool this handler's reads queue on: "list" (the panel's) or "run" (run tabs'),
    # see ``queries.StoreAccess``.
    lane = "list"

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on the store's thread pool: never on the event loop. A store
        that cannot be read answers 503 with the store's one-line reason, not a traceback; so
        does one busy past the wait (another process's long write, a full disk). A change
        whose COMMIT went unanswered, the server away since (``StoreChangeUnknownError``): 504,
        saying it may or may not have been made. Any other error of labloom's own (a bad
        ``LABLOOM_STORE_...`` setting read as the store opens): 500 with its line."""
        try:
            return await self.access.call(fn, *args, lane=self.lane)
        except StoreChangeUnknownError as exc:  # not 503: clicking again may do it twice
            raise ErrorAnswer(504, f"{exc}: the run list tells", exc.done) from None
        except StoreUnavailableError as exc:
            raise ErrorAnswer(503, str(exc), exc.done) from None
        except LabloomError as exc:  # a bad setting as the store opened: its line, the fix in it
            raise web.HTTPError(500, str(exc)) from None
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise web.HTTPError(
                503, f"[labloom] the store {redact(database_url())} cannot be used now "
                f"({short_error(exc)}): another process may hold a long write; try again later"
            ) from None

    def pushed_deleted(self, run_ids: list[str]) -> None:
        """Runs this request deleted: the watcher's next event names them, so this server's
        other views (another browser window) drop them at once (``push.py``)."""
        watcher = self.settings.get(SETTINGS_KEY + "_watcher")
        if watcher is not None:
            watcher.deleted(run_ids)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = (kwargs.get("exc_info") or (None, None))[1]
        if not isinstance(error, ErrorAnswer):
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": error.log_message, "reason": error.reason,
                                **error.fields}))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def reply_for_run(self, data: Any) -> None:
        """A run's answer; None (what the queries return for a run the store lacks) is 404."""
        if data is None:
            raise web.HTTPError(404, "no such run")
        self.reply(data)

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            # A bound past any real count (an offset's 2**62) is no rule to state.
            rule = f"{low} or more" if high >= 2**62 else f"between {low} and {high}"
            raise web.HTTPError(400, f"{name} must be {rule}")
        return value

    # What HTTP clients send for a flag: desc=1, desc=true, and Python's desc=False (requests'
    # params={"desc": False}), which a test against "false" alone read as true.
    _TRUE = frozenset(("1", "true", "yes", "on"))
    _FALSE = frozenset(("0", "false", "no", "off"))

    def bool_argument(self, name: str, default: bool) -> bool:
        text = (self.get_argument(name, None) or "").strip().lower()
        if not text:
            return default
        if text in self._TRUE or text in self._FALSE:
            return text in self._TRUE
        raise web.HTTPError(400, f"{name} must be 1 or 0 (true or false), not {text!r}")

    def time_argument(self, name: str) -> float | None:
        """A time bound as every surface reads one (``since_text.since_of``): epoch seconds,
        a date or time, or a time ago (``7d``); else a 400 naming these forms."""
        text = (self.get_argument(name, None) or "").strip()
        try:
            return since_of(text) if text else None
        except ValueError as exc:
            raise web.HTTPError(400, f"{name}: {exc}") from None


class NotFoundHandler(LabloomHandler):
    """Any other path under ``labloom/api/``: a JSON 404 like every other answer of the API
    (without this route Jupyter answers with its HTML error page), behind the same auth."""

    def _not_found(self, **path: str) -> None:
        raise web.HTTPError(
            404, f"no route {self.request.method} {self.request.path}; the routes are listed "
            "in labloom's docs/rest-api.md"
        )

    get = delete = tornado.web.authenticated(authorized(_not_found))
    post = put = patch = get
