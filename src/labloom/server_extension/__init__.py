"""labloom's Jupyter server extension: a JSON REST API under ``{base_url}labloom/api/``.

Enabled by ``etc/jupyter/jupyter_server_config.d/labloom.json`` (installed with the wheel); the
Flows panel, the status-bar item and the run view of the JupyterLab extension (``js/``) read it.
Every handler is a jupyter_server ``APIHandler`` behind Jupyter's authentication and authorizer.
The store is read in two small thread pools (the panel's and the run tabs'), never on
tornado's event loop. Routes: see ``routes.py`` and docs/rest-api.md. Changes in the store are
pushed to the Lab side as jupyter_events events (``push.py``).
"""

from __future__ import annotations

from typing import Any

SETTINGS_KEY = "labloom"
# The jupyter_events schema of the watcher's events (``push.py``); ``GET runs`` names it, so a
# view knows the server pushes before the first event comes.
EVENTS_SCHEMA_ID = "https://events.labloom.dev/labloom/runs/v1"


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .push import SCHEMA_PATH, Watcher
    from .queries import StoreAccess
    from .routes import handlers

    web_app = server_app.web_app
    access = StoreAccess()
    web_app.settings[SETTINGS_KEY] = access
    access.warm(server_app.log)  # in the background: the first request finds the store open
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    server_app.log.info("labloom: REST API at %slabloom/api/", web_app.settings["base_url"])

    # Registered before any events socket opens: a socket listens to the schemas known then.
    server_app.event_logger.register_event_schema(SCHEMA_PATH)
    watcher = Watcher(access, server_app.event_logger, server_app.log)
    web_app.settings[SETTINGS_KEY + "_watcher"] = watcher
    server_app.io_loop.add_callback(watcher.start)
    cleanup = server_app.cleanup_extensions

    async def stop_labloom_then_cleanup() -> None:
        # jupyter_server 2 calls stop hooks of ExtensionApps only; a module extension such as
        # this one stops what it started by wrapping the server's own cleanup step.
        await watcher.stop()
        access.close()
        await cleanup()

    server_app.cleanup_extensions = stop_labloom_then_cleanup

