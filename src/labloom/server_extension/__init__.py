"""labloom's Jupyter server extension: a JSON REST API under ``{base_url}labloom/api/``.

Enabled by ``etc/jupyter/jupyter_server_config.d/labloom.json`` (installed with the wheel); the
Flows panel, the status-bar item and the run view of the JupyterLab extension (``js/``) read it.
Every handler is a jupyter_server ``APIHandler`` behind Jupyter's authentication and authorizer.
The store is read in two small thread pools (the panel's and the run tabs'), never on
tornado's event loop. Routes: see ``routes.py`` and docs/rest-api.md.
"""

from __future__ import annotations

from typing import Any

SETTINGS_KEY = "labloom"


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .queries import StoreAccess
    from .routes import handlers

    web_app = server_app.web_app
    access = StoreAccess()
    web_app.settings[SETTINGS_KEY] = access
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    server_app.log.info("labloom: REST API at %slabloom/api/", web_app.settings["base_url"])

