"""Notebook defaults as a traitlets ``Configurable``: ``c.Labloom.executor = "dask"``.

Where a value comes from, strongest first: an environment variable (``LABLOOM_EXECUTOR``,
``LABLOOM_ADDRESS``, ``LABLOOM_WIDGET``, ``LABLOOM_HOME``), then ``%config Labloom.x = ...`` or
a Jupyter/IPython config file, then the defaults below. Environment variables win because an
administrator or a CI job sets them for a whole machine, above anyone's config file.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Dict, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..executors.cluster_profiles import use_kernel_profiles

ENV = {
    "executor": "LABLOOM_EXECUTOR",
    "address": "LABLOOM_ADDRESS",
    "widget": "LABLOOM_WIDGET",
    "home": "LABLOOM_HOME",
    "database_url": "LABLOOM_DATABASE_URL",
    "store_parameters": "LABLOOM_STORE_PARAMETERS",
}
_FALSE = ("0", "false", "no", "off")


class Labloom(Configurable):
    """labloom's notebook settings (``%config Labloom`` lists them)."""

    executor = CaselessStrEnum(
        ["threads", "local", "dask"],
        default_value="threads",
        help="Executor for %%flow cells without --executor: threads, local or dask.",
    ).tag(config=True)
    address = Unicode(
        "",
        help="Dask scheduler address (tcp://host:8786); when set, %%flow runs there by default.",
    ).tag(config=True)
    widget = Bool(True, help="Show the live DAG under a %%flow cell.").tag(config=True)
    home = Unicode(
        "", help="Folder for labloom's store and results (default ~/.labloom)."
    ).tag(config=True)
    database_url = Unicode(
        "", help="A team's store: postgresql://user@host/dbname (default: SQLite in home)."
    ).tag(config=True)
    admins = List(
        Unicode(), help="Users who may cancel, retry and change schedules of other users' "
        "runs in a shared store (LABLOOM_ADMINS wins)."
    ).tag(config=True)
    clusters = Dict(
        help="Named cluster profiles for --cluster NAME: {name: {'cluster_class': "
        "'dask_kubernetes.operator.KubeCluster', 'cluster_kwargs': {...}, 'adapt_kwargs': "
        "{'minimum': 1, 'maximum': 10}}} (LABLOOM_CLUSTERS, as JSON, wins per name)."
    ).tag(config=True)

    @validate("clusters")
    def _check_clusters(self, proposal: Any) -> dict[str, Any]:
        from ..core.errors import ClusterConfigError
        from ..executors.cluster_profiles import check_profiles

        try:
            return check_profiles(proposal["value"], "Labloom.clusters")
        except ClusterConfigError as exc:
            raise TraitError(str(exc)) from None

    @validate("database_url")
    def _check_database_url(self, proposal: Any) -> str:
        from urllib.parse import urlsplit

        value = str(proposal["value"]).strip()
        if value and urlsplit(value).password:
            # A notebook setting is shown by %config and saved with notebooks: no secrets.
            raise TraitError(
                "[labloom] Labloom.database_url must not hold a password (it would show in "
                "%config and in saved notebooks); put it in ~/.pgpass or PGPASSWORD, or set "
                "LABLOOM_DATABASE_URL in the environment"
            )
        return value
    store_parameters = Bool(
        True, help="Record flow parameter values; False records each one as ***."
    ).tag(config=True)

    @validate("address")
    def _check_address(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value and "://" not in value:
            # A TraitError (not ValueError) makes traitlets roll the value back.
            raise TraitError(
                f"[labloom] Labloom.address must look like tcp://host:8786, got {value!r}"
            )
        return value

    def effective(self, name: str) -> Any:
        """The value in force for ``name``: its environment variable if set, else the trait."""
        raw = os.environ.get(ENV[name])
        if raw is None or raw == "":
            return getattr(self, name)
        if name == "widget":
            return raw.strip().lower() not in _FALSE
        return raw.strip()

    def apply_home(self) -> None:
        """Point the store at ``home`` and ``database_url`` unless LABLOOM_HOME and
        LABLOOM_DATABASE_URL already decide; the same for ``store_parameters`` (the engine
        reads LABLOOM_STORE_PARAMETERS)."""
        if self.home and not os.environ.get("LABLOOM_HOME"):
            os.environ["LABLOOM_HOME"] = os.path.expanduser(self.home)
        if self.database_url and not os.environ.get("LABLOOM_DATABASE_URL"):
            os.environ["LABLOOM_DATABASE_URL"] = self.database_url
        if self.admins and not os.environ.get("LABLOOM_ADMINS"):
            os.environ["LABLOOM_ADMINS"] = ",".join(self.admins)
        if not self.store_parameters and not os.environ.get("LABLOOM_STORE_PARAMETERS"):
            os.environ["LABLOOM_STORE_PARAMETERS"] = "0"
            self._set_store_parameters = True
        elif self.store_parameters and getattr(self, "_set_store_parameters", False):
            os.environ.pop("LABLOOM_STORE_PARAMETERS", None)  # only what this object set
            self._set_store_parameters = False


def current_shell() -> Any:
    """The running IPython shell, or None."""
    from IPython.core.getipython import get_ipython

    # Called through Any: IPython 8 leaves get_ipython untyped and IPython 9 types it, and
    # strict mypy must pass with either.
    getter: Any = get_ipython
    return getter()


def settings(shell: Any = None) -> Labloom:
    """The kernel's one ``Labloom`` object, configured from the shell's config."""
    if shell is None:
        shell = current_shell()
    existing = getattr(shell, "_labloom_settings", None) if shell is not None else None
    if isinstance(existing, Labloom):
        return existing
    config = getattr(shell, "config", None)
    made = Labloom(parent=shell) if shell is not None else Labloom(config=config)
    if shell is not None:
        shell._labloom_settings = made
        # %config finds configurables here; it then updates the object live.
        if made not in shell.configurables:
            shell.configurables.append(made)
    made.observe(
        lambda _change: made.apply_home(),
        names=["home", "database_url", "admins", "store_parameters"],
    )
    made.apply_home()
    made.observe(lambda change: use_kernel_profiles(change["new"]), names=["clusters"])
    use_kernel_profiles(made.clusters)
    return made
