"""Named cluster profiles: ``--cluster k8s`` on ``labloom run``, ``schedule add`` and ``%%flow``,
or ``executor="cluster:k8s"`` anywhere an executor is named.

A profile is what ``DaskExecutor(cluster_class=..., cluster_kwargs=..., adapt_kwargs=...)``
takes, kept in the settings under a name::

    c.Labloom.clusters = {
        "k8s": {"cluster_class": "dask_kubernetes.operator.KubeCluster",
                "cluster_kwargs": {"name": "nightly", "image": "ghcr.io/dask/dask:latest"},
                "adapt_kwargs": {"minimum": 1, "maximum": 10}},
    }

Where profiles come from, strongest first (as for every setting), merged by name:
``LABLOOM_CLUSTERS`` (the same mapping as JSON); in a kernel, its ``Labloom.clusters``
(``%config``); ``c.Labloom.clusters`` in the Jupyter and IPython config files
(``jupyter_config.py`` / ``.json`` in ``jupyter --paths``' config folders, and the default
IPython profile's ``ipython_config.py`` and ``ipython_kernel_config.py``), read by this module
so that ``labloom run`` and ``labloom serve`` see what a notebook sees. A schedule stores the
name, so each run uses the profile as it is then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ClusterConfigError

ENV = "LABLOOM_CLUSTERS"
KEYS = ("cluster_class", "cluster_kwargs", "adapt_kwargs")
# Set by the kernel's settings (``Labloom.clusters``); None outside a kernel.
_kernel_profiles: dict[str, dict[str, Any]] | None = None


def check_profiles(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """``value`` as profiles, or a ClusterConfigError saying what is wrong in ``where``."""
    def bad(why: str) -> ClusterConfigError:
        return ClusterConfigError(f"[labloom] {where}: {why}")

    if not isinstance(value, Mapping):
        raise bad("cluster profiles are a mapping of name -> {\"cluster_class\": ..., "
                  f"\"cluster_kwargs\": {{...}}, \"adapt_kwargs\": {{...}}}}, got {value!r}")
    profiles: dict[str, dict[str, Any]] = {}
    for name, profile in value.items():
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise bad(f"a cluster profile name must be a word such as 'k8s', got {name!r}")
        if not isinstance(profile, Mapping) or not profile.get("cluster_class"):
            raise bad(f"cluster profile {name!r} needs a cluster_class, such as "
                      "'dask_kubernetes.operator.KubeCluster'")
        unknown = sorted(set(profile) - set(KEYS))
        if unknown:
            raise bad(f"cluster profile {name!r}: unknown key(s) {', '.join(unknown)}; a "
                      f"profile has {', '.join(KEYS)}")
        for key in KEYS[1:]:
            if profile.get(key) is not None and not isinstance(profile[key], Mapping):
                raise bad(f"cluster profile {name!r}: {key} must be a mapping, got "
                          f"{profile[key]!r}")
        profiles[name] = dict(profile)
    return profiles


def use_kernel_profiles(value: Mapping[str, Any] | None) -> None:
    """The kernel's ``Labloom.clusters`` (called by the notebook settings when it changes)."""
    global _kernel_profiles
    _kernel_profiles = None if value is None else check_profiles(value, "Labloom.clusters")


def profiles() -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every profile in force, and the config files that could not be read."""
    unread: list[str] = []
    found = _from_config_files(unread)
    found.update(_kernel_profiles or {})
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ClusterConfigError(f"[labloom] {ENV} is not valid JSON ({exc}); set it to "
                                     '{"NAME": {"cluster_class": "package.Class", ...}}') from None
        found.update(check_profiles(parsed, ENV))
    return found, unread


def profile_executor(name: str) -> Any:
    """A ``DaskExecutor`` for the profile ``name`` (checked: an unknown name, class or option
    is a ClusterConfigError before anything runs)."""
    found, unread = profiles()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        note = f" (could not read {', '.join(unread)})" if unread else ""
        raise ClusterConfigError(
            f"[labloom] no cluster profile named {name!r}; the profiles are {known}{note}. "
            "Define it in c.Labloom.clusters (a Jupyter config file) or in "
            f"{ENV}='{{\"{name}\": {{\"cluster_class\": \"distributed.LocalCluster\"}}}}'"
        )
    from .dask import DaskExecutor

    profile = found[name]
    executor = DaskExecutor(cluster_class=profile["cluster_class"],
                            cluster_kwargs=profile.get("cluster_kwargs"),
                            adapt_kwargs=profile.get("adapt_kwargs"))
    executor.profile = name
    return executor


def _from_config_files(unread: list[str]) -> dict[str, dict[str, Any]]:
    """``c.Labloom.clusters`` from the config files a kernel reads (later files win)."""
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    found: dict[str, dict[str, Any]] = {}
    for path in _config_files():
        loader = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
        try:
            config = loader(path.name, str(path.parent)).load_config()
        except Exception:  # a config file written for a Jupyter app, failing outside one
            unread.append(str(path))
            continue
        section = config.get("Labloom", {})
        if "clusters" in section:
            found.update(check_profiles(section["clusters"], f"c.Labloom.clusters in {path}"))
    return found


def _config_files() -> list[Path]:
    from jupyter_core.paths import jupyter_config_path

    files: list[Path] = []
    # jupyter_config_path() lists the strongest folder first.
    for folder in reversed(jupyter_config_path()):
        files += [Path(folder) / f"jupyter_config{ext}" for ext in (".json", ".py")]
    ipython = Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython") / "profile_default"
    files += [ipython / "ipython_config.py", ipython / "ipython_kernel_config.py"]
    return [path for path in files if path.is_file()]
